/*
 * taskqueue console — the views that watch tasks: overview, task listing, task page.
 *
 * Each view is an Alpine.js component. It loads its snapshot once (after the page's event id,
 * rendered into the page), then follows /ws from that id: every change after the first load
 * arrives as an event, so an idle page makes no HTTP request. Events are applied in batches
 * (TQ.Stream: once per animation frame). Counters that the snapshot already includes are only
 * moved by events newer than the page's event id.
 */
document.addEventListener("alpine:init", () => {
  "use strict";
  const { api, Stream, compareIds } = window.TQ;
  const after = () => window.TQ.config.event_id;
  const newer = (event) => !after() || compareIds(event.id, after()) > 0;
  const eventMs = (event) => Number(event.id.split("-")[0]);
  const QUEUES = ["critical", "high", "normal", "low"];

  function report(err) {
    if (err && err.status !== 401) window.Alpine.store("tq").error = err.message;
  }

  window.Alpine.data("shell", () => ({}));

  window.Alpine.data("login", () => ({
    kind: "key",
    secret: "",
    busy: false,
    localMessage: "",
    get message() {
      return this.localMessage || this.$store.tq.signInMessage;
    },
    async submit() {
      this.busy = true;
      this.localMessage = "";
      try {
        const auth = await window.TQ.checkCredential(this.kind, this.secret.trim());
        const restart = this.$store.tq.signInMessage !== "";
        this.secret = "";
        this.$store.tq.signedIn(auth);
        if (restart) location.reload(); // signed out mid-session: start the page afresh
      } catch (err) {
        this.localMessage = err.status === 401
          ? "Those credentials were refused (401 Unauthorized)."
          : `Could not check the credentials: ${err.message}`;
      } finally {
        this.busy = false;
      }
    },
  }));

  window.Alpine.data("overview", () => {
    let chart = null;
    return {
      queues: QUEUES.map((name) => ({ name, depth: null, paused: null, busy: false })),
      queuePause: false,
      workers: null,
      dlqSize: null,
      done: null,
      rate: [0, 0],
      get successRate() {
        if (!this.done) return "—";
        const finished = this.done.completed + this.done.failed + this.done.dead_letter;
        return finished ? `${((100 * this.done.completed) / finished).toFixed(1)} %` : "—";
      },
      async init() {
        await this.$store.tq.ready;
        chart = new window.TQThroughput(this.$refs.chart);
        try {
          await this.load();
        } catch (err) {
          report(err);
        }
        new Stream({ after: after(), onBatch: (batch) => this.apply(batch) }).start();
        setInterval(() => {
          chart.redraw();
          this.rate = chart.lastSecond();
        }, 1000);
      },
      async load() {
        const admin = this.$store.tq.admin;
        const [stats, queues, workers, dlq] = await Promise.all([
          api("/api/v1/tasks/statistics"),
          admin ? api("/admin/queues") : api("/api/v1/tasks?page_size=1"),
          admin ? api("/admin/workers") : null,
          admin ? api("/admin/dlq?count=1") : null,
        ]);
        const s = stats.by_state;
        this.done = { completed: s.completed, failed: s.failed, dead_letter: s.dead_letter };
        for (const queue of this.queues) {
          if (admin) {
            queue.depth = queues.queues[queue.name].depth;
            queue.paused = queues.queues[queue.name].paused ?? null;
          } else {
            queue.depth = queues.queue_depths[queue.name];
          }
        }
        this.queuePause = admin && this.queues.some((q) => q.paused !== null);
        if (workers) this.workers = new Set(workers.workers.map((w) => w.id));
        if (dlq) this.dlqSize = dlq.size;
      },
      apply(batch) {
        // Counted into plain numbers first: one reactive update per batch, not per event.
        const done = { completed: 0, failed: 0, dead_letter: 0 };
        let dlq = 0;
        for (const event of batch) {
          const data = event.data;
          const fresh = newer(event);
          switch (event.type) {
            case "task.completed":
              chart.add(eventMs(event), false);
              if (fresh) done.completed += 1;
              break;
            case "task.failed":
              chart.add(eventMs(event), true);
              if (fresh && data.state === "failed") done.failed += 1;
              break;
            case "task.dead_letter":
              if (fresh) {
                done.dead_letter += 1;
                dlq += 1;
              }
              break;
            case "task.submitted":
              if (fresh && data.requeued_from in done) {
                done[data.requeued_from] -= 1;
                if (data.requeued_from === "dead_letter") dlq -= 1;
              }
              break;
            case "queue.depth":
              for (const queue of this.queues) {
                if (data.queues && queue.name in data.queues) queue.depth = data.queues[queue.name];
              }
              break;
            case "queue.paused":
            case "queue.resumed":
              for (const queue of this.queues) {
                if (queue.name === (data.queue || data.name)) {
                  queue.paused = event.type === "queue.paused";
                }
              }
              break;
            case "worker.joined":
            case "worker.heartbeat":
              if (this.workers) this.workers.add(data.worker_id);
              break;
            case "worker.left":
              if (this.workers) this.workers.delete(data.worker_id);
              break;
          }
        }
        if (this.done) {
          for (const name in done) {
            if (done[name]) this.done[name] = Math.max(0, this.done[name] + done[name]);
          }
        }
        if (dlq && this.dlqSize !== null) this.dlqSize = Math.max(0, this.dlqSize + dlq);
      },
      async toggle(queue) {
        queue.busy = true;
        try {
          const verb = queue.paused ? "resume" : "pause";
          const answer = await api(`/admin/queues/${queue.name}/${verb}`, { method: "POST" });
          queue.paused = answer.paused;
          if (answer.depth !== undefined) queue.depth = answer.depth;
        } catch (err) {
          report(err);
        } finally {
          queue.busy = false;
        }
      },
    };
  });

  const LIST_FIELDS = ["state", "status", "type", "sort_by", "order", "page", "page_size"];

  window.Alpine.data("tasks", () => {
    let byId = new Map();
    return {
      query: { state: "", status: "", type: "", sort_by: "created_at", order: "desc",
        page: 1, page_size: 20 },
      rows: [],
      total: 0,
      pages: 1,
      arrived: 0,
      loaded: false,
      jump: "",
      async init() {
        const params = new URLSearchParams(location.search);
        for (const name of LIST_FIELDS) if (params.get(name)) this.query[name] = params.get(name);
        await this.$store.tq.ready;
        try {
          await this.load();
        } catch (err) {
          report(err);
        }
        new Stream({ types: "task.*", after: after(), onBatch: (b) => this.apply(b) }).start();
      },
      params() {
        const params = new URLSearchParams();
        for (const name of LIST_FIELDS) {
          const value = String(this.query[name] ?? "").trim();
          if (value) params.set(name, value);
        }
        return params;
      },
      async load() {
        const data = await api(`/api/v1/tasks?${this.params()}`);
        this.rows = data.tasks;
        this.total = data.total;
        this.pages = data.pages;
        this.query.page = data.page;
        byId = new Map(this.rows.map((row) => [row.id, row]));
        this.loaded = true;
      },
      apply(batch) {
        for (const event of batch) {
          const data = event.data;
          const row = byId.get(data.task_id);
          if (row) {
            for (const name of ["state", "status", "progress", "attempts"]) {
              if (data[name] !== undefined) row[name] = data[name];
            }
            row.updated_at = event.timestamp;
          } else if (event.type === "task.submitted" && !data.requeued_from && newer(event)) {
            this.arrived += 1;
          }
        }
      },
      /** Apply the filter form: a new URL, so the view can be bookmarked and shared. */
      search() {
        this.query.page = 1;
        location.search = this.params().toString();
      },
      pageHref(page) {
        const params = this.params();
        params.set("page", page);
        return `?${params}`;
      },
      go() {
        const id = this.jump.trim();
        if (id) location.href = `${location.pathname.replace(/\/$/, "")}/${encodeURIComponent(id)}`;
      },
      async refresh() {
        this.arrived = 0;
        try {
          await this.load();
        } catch (err) {
          report(err);
        }
      },
    };
  });

  const CANCELLABLE = ["pending", "scheduled", "retrying"];
  const RETRYABLE = ["failed", "dead_letter", "cancelled", "completed"];
  // Events after which the envelope has fields the event does not carry (result, error, times).
  const REFETCH = ["task.started", "task.completed", "task.failed", "task.retrying",
    "task.cancelled", "task.dead_letter", "task.submitted"];

  window.Alpine.data("task", (taskId) => {
    let fetching = null;
    let again = false;
    return {
      id: taskId,
      task: null,
      missing: false,
      deleted: false,
      busy: false,
      timeline: [],
      get canCancel() {
        return this.task && CANCELLABLE.includes(this.task.state);
      },
      get canRetry() {
        return this.task && RETRYABLE.includes(this.task.state);
      },
      get canPurge() {
        return this.task && window.TQ.FINAL.includes(this.task.state);
      },
      get envelope() {
        return this.task ? JSON.stringify(this.task, null, 2) : "";
      },
      async init() {
        await this.$store.tq.ready;
        try {
          this.task = await api(`/api/v1/tasks/${encodeURIComponent(this.id)}`);
        } catch (err) {
          if (err.status === 404) this.missing = true;
          else report(err);
        }
        if (!this.task) return; // nothing to follow
        // Replay the task's whole history: its events all follow its creation (created_at and
        // event ids both come from Redis's clock; a second of margin for the ms rounding).
        const created = Date.parse(this.task.created_at) - 1000;
        new Stream({ taskId: this.id, after: `${Math.max(created, 0)}-0`,
          onBatch: (b) => this.apply(b) }).start();
      },
      apply(batch) {
        let refetch = false;
        for (const event of batch) {
          const data = event.data;
          this.timeline.push({ id: event.id, type: event.type, at: event.timestamp,
            state: data.state, progress: data.progress, attempts: data.attempts });
          if (this.task && newer(event)) {
            for (const name of ["state", "status", "progress", "attempts"]) {
              if (data[name] !== undefined) this.task[name] = data[name];
            }
            refetch = refetch || REFETCH.includes(event.type);
          }
        }
        if (refetch) this.refetch();
      },
      /** Read the envelope again; at most one request in flight, the last one always made. */
      async refetch() {
        if (fetching) {
          again = true;
          return;
        }
        fetching = api(`/api/v1/tasks/${encodeURIComponent(this.id)}`);
        try {
          this.task = await fetching;
        } catch (err) {
          if (err.status === 404) this.deleted = true;
          else report(err);
        } finally {
          fetching = null;
        }
        if (again) {
          again = false;
          this.refetch();
        }
      },
      async act(verb) {
        const base = `/api/v1/tasks/${encodeURIComponent(this.id)}`;
        const calls = {
          cancel: [base, "DELETE"], retry: [`${base}/retry`, "POST"],
          purge: [`${base}?purge=true`, "DELETE"],
        };
        this.busy = true;
        try {
          const answer = await api(calls[verb][0], { method: calls[verb][1] });
          if (verb === "purge") {
            this.deleted = true;
            this.task = null;
          } else {
            this.task = answer;
          }
        } catch (err) {
          report(err);
        } finally {
          this.busy = false;
        }
      },
    };
  });
});
