"""The console's overview under a stream of events: main-thread responsiveness and latency.

Run from the repository root (needs a Chromium, as the browser tests do)::

    .venv/bin/python bench/console.py [--rates 0,1000] [--seconds 10] [--rounds 3]

Method
------
* One private ``redis-server`` and one gunicorn web process (``tests.harness``: ``-k gthread
  -w 1``), no Celery worker: the events are appended to ``tq:events`` by this script, as the
  store's scripts append them (fields ``type`` and ``data``, the task's scalar view), so the
  rate is exactly the one asked for and the machine's two cores are not also running tasks.
  The mix is what a busy cluster emits: for each task ``task.started``, two ``task.progress``,
  then ``task.completed`` (one task in ten ``task.failed``). A producer thread appends every
  10 ms the events due by then (one pipeline), so 1,000 events/s arrive as 10 every 10 ms.
* Headless Chromium (``CHROMIUM``, default ``/usr/bin/chromium``, the browser tests' flags)
  opens ``/ui`` at 1280×800 and waits until its stream is live. Instrumentation is injected
  before the page's own scripts (``add_init_script``); the console itself is unchanged:
  - *long tasks*: ``PerformanceObserver`` of type ``longtask`` (main-thread tasks > 50 ms);
    the longest and the count are reported (0 / "—" when none);
  - *frames*: a ``requestAnimationFrame`` loop records the interval between frames; the
    longest interval and the p99 are reported (16.7 ms is a perfect 60 Hz frame);
  - *event-to-screen latency*: the console dispatches ``tq:rendered`` after Alpine has
    patched the DOM for a batch (the frame is painted right after); for each event of the
    batch, latency = ``Date.now()`` at that moment − the ms part of the event id (the Redis
    server's clock when it appended the event; same machine, same clock). p50 and p99 are
    nearest rank over every event shown during the phase.
  - *events per render*: events received / batches rendered.
* Phases: each rate in ``--rates`` for ``--seconds``, rounds alternating (0, 1000, 0, 1000, …)
  on the same page; a phase's numbers start when its first event is shown (rate 0: at once),
  and before the next phase starts the page has shown the newest event (so a phase that fell
  behind does not spill into the next one).
  Reported: the median over rounds of each number, per rate. Rate 0 is the baseline: the same
  page with only the worker-less idle stream (nothing arrives).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.harness import RedisServer, WebServer  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

PROBE = """
window.__bench = {longTasks: [], frames: [], latencies: [], batches: 0, events: 0, on: false};
new PerformanceObserver(list => {
  const b = window.__bench;
  if (b.on) for (const e of list.getEntries()) b.longTasks.push(e.duration);
}).observe({type: 'longtask', buffered: false});
let last = performance.now();
requestAnimationFrame(function tick(now) {
  if (window.__bench.on) window.__bench.frames.push(now - last);
  last = now;
  requestAnimationFrame(tick);
});
document.addEventListener('tq:rendered', e => {
  const b = window.__bench;
  if (!b.on) return;
  const now = Date.now();
  b.batches += 1;
  for (const event of e.detail) {
    if (!event.type.startsWith('task.')) continue;
    b.events += 1;
    b.latencies.push(now - Number(event.id.split('-')[0]));
  }
});
"""
RESET = (
    "Object.assign(window.__bench, {longTasks: [], frames: [], latencies: [], "
    "batches: 0, events: 0, on: true})"
)
COLLECT = "(() => { window.__bench.on = false; return window.__bench; })()"


def events_for(task_number: int) -> list[tuple[str, dict]]:
    """The events one task emits, in order (the store scripts' data shape)."""
    task_id = str(uuid.UUID(int=task_number))
    base = {"task_id": task_id, "type": "echo", "priority": "normal", "attempts": 1}
    failed = task_number % 10 == 0
    return [
        ("task.started", {**base, "state": "running", "status": "processing", "progress": 0}),
        ("task.progress", {**base, "state": "running", "status": "processing", "progress": 40}),
        ("task.progress", {**base, "state": "running", "status": "processing", "progress": 80}),
        (
            "task.failed",
            {
                **base,
                "state": "retrying",
                "status": "pending",
                "progress": 80,
                "error": "failed on purpose",
            },
        )
        if failed
        else (
            "task.completed",
            {**base, "state": "completed", "status": "completed", "progress": 100},
        ),
    ]


class Producer(threading.Thread):
    """Appends ``rate`` events a second to ``tq:events`` (a pipeline every 10 ms)."""

    def __init__(self, client: redis.Redis, rate: int) -> None:
        super().__init__(daemon=True)
        self.client, self.rate = client, rate
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        if not self.rate:
            return
        started = time.monotonic()
        queue: list[tuple[str, dict]] = []
        task = 0
        while not self.stop.is_set():
            due = int((time.monotonic() - started) * self.rate) - self.sent
            if due > 0:
                pipe = self.client.pipeline(transaction=False)
                for _ in range(due):
                    if not queue:
                        task += 1
                        queue = events_for(task)
                    kind, data = queue.pop(0)
                    pipe.xadd(
                        "tq:events",
                        {"type": kind, "data": json.dumps(data)},
                        maxlen=100000,
                        approximate=True,
                    )
                pipe.execute()
                self.sent += due
            self.stop.wait(0.01)


def nearest_rank(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def phase(page, client: redis.Redis, rate: int, seconds: float) -> dict:
    producer = Producer(client, rate)
    page.evaluate(RESET)
    producer.start()
    if rate:  # measure from the first event on screen
        page.wait_for_function("window.__bench.events > 0", timeout=30000)
        page.evaluate(RESET)
    time.sleep(seconds)  # the phase's length (a measurement window, not a synchronisation)
    result = page.evaluate(COLLECT)
    producer.stop.set()
    producer.join()
    # Not measured: let the page catch up with the stream before the next phase starts.
    newest = client.xrevrange("tq:events", count=1)
    if newest:
        page.wait_for_function(
            "id => window.TQ.streams.some(s => s.lastId && "
            "window.TQ.compareIds(s.lastId, id) >= 0)",
            arg=newest[0][0].decode(),
            timeout=120000,
        )
    frames = result["frames"]
    return {
        "rate": rate,
        "events": result["events"],
        "events_per_render": result["events"] / result["batches"] if result["batches"] else 0,
        "long_tasks": len(result["longTasks"]),
        "longest_task_ms": max(result["longTasks"], default=0.0),
        "longest_frame_ms": max(frames, default=0.0),
        "frame_p99_ms": nearest_rank(frames, 0.99) or 0.0,
        "latency_p50_ms": nearest_rank(result["latencies"], 0.50),
        "latency_p99_ms": nearest_rank(result["latencies"], 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="0,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]

    from playwright.sync_api import sync_playwright

    server = RedisServer().start()
    web = WebServer(server.url(0), workers=1, threads=16).start()
    client = redis.Redis.from_url(server.url(0))
    results: dict[int, list[dict]] = {rate: [] for rate in rates}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.add_init_script(PROBE)
            page.goto(web.url + "/ui")
            page.locator(".live.live").wait_for(timeout=30000)
            for _ in range(args.rounds):
                for rate in rates:
                    results[rate].append(phase(page, client, rate, args.seconds))
                    print(json.dumps(results[rate][-1]), file=sys.stderr, flush=True)
            browser.close()
    finally:
        web.stop()
        server.stop()

    def median(rate: int, key: str) -> float | None:
        values = [r[key] for r in results[rate] if r[key] is not None]
        return statistics.median(values) if values else None

    def show(value: float | None, digits: int = 1) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    print(
        f"Overview at 1280×800 in headless Chromium; {args.seconds:g} s per phase, "
        f"{args.rounds} alternating rounds, medians:\n"
    )
    print(
        "| events/s | events shown | events per render | long tasks | longest task ms "
        "| longest frame ms | frame p99 ms | latency p50 ms | latency p99 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rate in rates:
        print(
            f"| {rate} | {show(median(rate, 'events'), 0)} "
            f"| {show(median(rate, 'events_per_render'))} "
            f"| {show(median(rate, 'long_tasks'), 0)} "
            f"| {show(median(rate, 'longest_task_ms'))} "
            f"| {show(median(rate, 'longest_frame_ms'))} "
            f"| {show(median(rate, 'frame_p99_ms'))} "
            f"| {show(median(rate, 'latency_p50_ms'))} "
            f"| {show(median(rate, 'latency_p99_ms'))} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
