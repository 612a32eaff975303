/*
 * taskqueue console — the views that act: workers, dead-letter queue, submit and upload.
 *
 * Same rules as views.js: one snapshot, then events (worker.* including the heartbeat each
 * worker sends every WORKER_HEARTBEAT_SECONDS; task.dead_letter and re-queues for the DLQ).
 * The heartbeat age ticks on a local timer: time passing needs no request.
 */
document.addEventListener("alpine:init", () => {
  "use strict";
  const { api, upload, Stream } = window.TQ;
  const after = () => window.TQ.config.event_id;

  function report(err) {
    if (err && err.status !== 401) window.Alpine.store("tq").error = err.message;
  }

  window.Alpine.data("workers", () => ({
    list: [],
    now: Date.now(),
    loaded: false,
    async init() {
      await this.$store.tq.ready;
      if (this.$store.tq.admin) {
        try {
          this.list = (await api("/admin/workers")).workers;
          this.loaded = true;
        } catch (err) {
          report(err);
        }
      }
      new Stream({ types: "worker.*", after: after(), onBatch: (b) => this.apply(b) }).start();
      setInterval(() => {
        this.now = Date.now();
      }, 1000);
    },
    find(id) {
      return this.list.find((worker) => worker.id === id);
    },
    upsert(record) {
      const known = this.find(record.id);
      if (known) {
        Object.assign(known, record);
      } else {
        this.list.push(record);
        this.list.sort((a, b) => a.id.localeCompare(b.id));
      }
    },
    apply(batch) {
      for (const event of batch) {
        const { worker_id: id, ...fields } = event.data;
        if (event.type === "worker.left") {
          this.list = this.list.filter((worker) => worker.id !== id);
        } else if (event.type === "worker.heartbeat") {
          const known = this.find(id);
          // A pause or resume asked for but not yet applied stays shown as such.
          if (known && known.state === "pausing" && fields.state !== "paused") delete fields.state;
          if (known && known.state === "resuming" && fields.state === "paused") delete fields.state;
          this.upsert({ id, ...fields });
        } else if (event.type === "worker.joined") {
          if (!this.find(id)) this.upsert({ id, state: "idle", last_heartbeat: event.timestamp });
        } else if (event.type === "worker.paused" || event.type === "worker.resumed") {
          const worker = this.find(id);
          if (worker) {
            worker.state = event.type === "worker.paused" ? "paused"
              : worker.active_tasks ? "busy" : "idle";
          }
        }
      }
    },
    age(worker) {
      const beat = Date.parse(worker.last_heartbeat);
      return Number.isNaN(beat) ? "—" : window.TQ.ago((this.now - beat) / 1000);
    },
    paused(worker) {
      return worker.state === "paused" || worker.state === "pausing";
    },
    async toggle(worker) {
      const verb = this.paused(worker) ? "resume" : "pause";
      worker.busy = true;
      try {
        this.upsert(await api(`/admin/workers/${encodeURIComponent(worker.id)}/${verb}`,
          { method: "POST" }));
      } catch (err) {
        report(err);
      } finally {
        worker.busy = false;
      }
    },
  }));

  window.Alpine.data("dlq", () => {
    let fetching = false;
    let again = false;
    return {
      entries: [],
      size: 0,
      loaded: false,
      busy: false,
      async init() {
        await this.$store.tq.ready;
        if (this.$store.tq.admin) {
          try {
            await this.load();
          } catch (err) {
            report(err);
          }
        }
        new Stream({ types: "task.dead_letter,task.submitted", after: after(),
          onBatch: (b) => this.apply(b) }).start();
      },
      async load() {
        const data = await api("/admin/dlq?count=100");
        this.entries = data.entries;
        this.size = data.size;
        this.loaded = true;
      },
      drop(taskId) {
        const before = this.entries.length;
        this.entries = this.entries.filter((entry) => entry.task.id !== taskId);
        this.size = Math.max(0, this.size - (before - this.entries.length));
      },
      apply(batch) {
        let added = false;
        for (const event of batch) {
          if (event.type === "task.dead_letter") added = true;
          else if (event.data.requeued_from === "dead_letter") this.drop(event.data.task_id);
        }
        if (added && this.loaded) this.more();
      },
      /** Entries after the newest one shown (after a task.dead_letter event). */
      async more() {
        if (fetching) {
          again = true;
          return;
        }
        fetching = true;
        try {
          const last = this.entries[this.entries.length - 1];
          const query = last ? `count=1000&after=${encodeURIComponent(last.message_id)}`
            : "count=100";
          const data = await api(`/admin/dlq?${query}`);
          const known = new Set(this.entries.map((entry) => entry.message_id));
          this.entries.push(...data.entries.filter((entry) => !known.has(entry.message_id)));
          this.size = data.size;
        } catch (err) {
          report(err);
        } finally {
          fetching = false;
        }
        if (again) {
          again = false;
          this.more();
        }
      },
      async retry(entry) {
        this.busy = true;
        try {
          await api("/admin/dlq/retry", { method: "POST", json: { task_id: entry.task.id } });
          this.drop(entry.task.id);
        } catch (err) {
          report(err);
        } finally {
          this.busy = false;
        }
      },
      async retryAll() {
        this.busy = true;
        try {
          await api("/admin/dlq/retry", { method: "POST", json: { retry_all: true } });
          await this.load();
        } catch (err) {
          report(err);
        } finally {
          this.busy = false;
        }
      },
      confirmClear() {
        this.$refs.confirm.showModal();
      },
      async clear() {
        this.$refs.confirm.close();
        this.busy = true;
        try {
          await api("/admin/dlq", { method: "DELETE" });
          await this.load();
        } catch (err) {
          report(err);
        } finally {
          this.busy = false;
        }
      },
    };
  });

  /** The payload fields of each registered type, from /openapi.json's Submit variants. */
  function taskTypes(doc) {
    const schemas = doc.components.schemas;
    const resolve = (node) => (node && node.$ref ? schemas[node.$ref.split("/").pop()] : node);
    return (schemas.Submit.oneOf || []).map(resolve).map((variant) => {
      const ref = variant.properties.payload.$ref.split("/").pop();
      const payload = schemas[ref] || { properties: {} };
      const required = payload.required || [];
      return {
        name: variant.properties.type.const,
        open: payload.additionalProperties !== false,
        fields: Object.entries(payload.properties || {}).map(([name, spec]) => ({
          name, kind: [].concat(spec.type || "string")[0], required: required.includes(name),
        })),
      };
    });
  }

  function taskPage(id) {
    location.href = `${window.TQ.config.base || "/ui"}/tasks/${encodeURIComponent(id)}`;
  }

  window.Alpine.data("submitForm", () => ({
    types: [],
    type: "",
    values: {},
    extra: "",
    priority: "low",
    maxRetries: 3,
    timeout: 300,
    metadata: "",
    busy: false,
    file: null,
    uploadType: "file.process",
    uploadPriority: "low",
    sent: 0,
    total: 0,
    uploading: false,
    get chosen() {
      return this.types.find((t) => t.name === this.type) || { fields: [], open: false };
    },
    async init() {
      await this.$store.tq.ready;
      try {
        this.types = taskTypes(await api("/openapi.json"));
        this.type = (this.types.find((t) => t.name === "echo") || this.types[0] || {}).name;
      } catch (err) {
        report(err);
      }
    },
    json(text, what) {
      if (!text.trim()) return {};
      try {
        return JSON.parse(text);
      } catch {
        throw new Error(`${what} is not valid JSON`);
      }
    },
    payload() {
      const payload = this.json(this.extra, "Extra payload");
      for (const field of this.chosen.fields) {
        const raw = this.values[field.name];
        if (raw === undefined || raw === "" || raw === null) continue;
        if (field.kind === "boolean") {
          if (raw) payload[field.name] = true;
        } else if (field.kind === "integer" || field.kind === "number") {
          payload[field.name] = Number(raw);
        } else {
          payload[field.name] = raw;
        }
      }
      return payload;
    },
    async submit() {
      this.busy = true;
      try {
        const body = { type: this.type, payload: this.payload(), priority: this.priority,
          max_retries: Number(this.maxRetries), timeout: Number(this.timeout) };
        const metadata = this.json(this.metadata, "Metadata");
        if (Object.keys(metadata).length) body.metadata = metadata;
        const task = await api("/api/v1/tasks", { method: "POST", json: body });
        taskPage(task.id);
      } catch (err) {
        report(err);
      } finally {
        this.busy = false;
      }
    },
    async send() {
      const file = this.$refs.file.files[0];
      if (!file) return;
      const form = new FormData();
      form.append("file", file);
      form.append("type", this.uploadType);
      form.append("priority", this.uploadPriority);
      this.uploading = true;
      this.sent = 0;
      this.total = file.size;
      try {
        const task = await upload("/api/v1/tasks/upload", form, (sent, total) => {
          this.sent = sent;
          this.total = total;
        });
        taskPage(task.task_id);
      } catch (err) {
        report(err);
      } finally {
        this.uploading = false;
      }
    },
  }));
});
