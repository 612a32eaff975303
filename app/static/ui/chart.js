/*
 * taskqueue console — the overview's throughput chart: completed and failed executions per
 * second over the last minutes, drawn with uPlot (vendor/uplot). Counts are kept per second
 * as events are applied (add); the chart is redrawn once a second (redraw).
 */
"use strict";

/** completed/s and failed/s over the last `seconds`, drawn with uPlot. */
window.TQThroughput = class Throughput {
  constructor(element, seconds = 300) {
    this.seconds = seconds;
    this.counts = new Map(); // unix second -> [completed, failed]
    this.element = element;
    const options = {
      width: Math.max(element.clientWidth, 280), height: 220,
      scales: { x: { time: true } },
      series: [{}, { label: "completed/s", stroke: "#1f7a4d", width: 2 },
        { label: "failed/s", stroke: "#b3261e", width: 2 }],
      axes: [{}, { label: "tasks/s", size: 56 }],
      legend: { live: false },
      cursor: { show: false },
    };
    this.plot = new window.uPlot(options, this.data(), element);
    new ResizeObserver(() =>
      this.plot.setSize({ width: Math.max(element.clientWidth, 280), height: 220 }))
      .observe(element);
  }

  add(ms, failed) {
    const second = Math.floor(ms / 1000);
    let pair = this.counts.get(second);
    if (!pair) this.counts.set(second, (pair = [0, 0]));
    pair[failed ? 1 : 0] += 1;
  }

  /** The window up to the last whole second. */
  data() {
    const last = Math.floor(Date.now() / 1000) - 1;
    const xs = [], done = [], failed = [];
    for (let s = last - this.seconds + 1; s <= last; s++) {
      const pair = this.counts.get(s) || [0, 0];
      xs.push(s);
      done.push(pair[0]);
      failed.push(pair[1]);
    }
    for (const second of this.counts.keys()) {
      if (second <= last - this.seconds) this.counts.delete(second);
    }
    return [xs, done, failed];
  }

  lastSecond() {
    return this.counts.get(Math.floor(Date.now() / 1000) - 1) || [0, 0];
  }

  redraw() {
    const data = this.data();
    this.plot.setData(data);
    // What the chart shows, for people reading the page's source and for its tests.
    const sum = (values) => values.reduce((a, b) => a + b, 0);
    this.element.dataset.completed = sum(data[1]);
    this.element.dataset.failed = sum(data[2]);
  }
};
