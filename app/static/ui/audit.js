/*
 * taskqueue console — the audit log view (/ui/audit): who changed what, oldest first.
 *
 * GET /admin/audit pages forward from an entry id (`after`); the view starts an hour back (or
 * at the `after` of its URL, so a page of the log can be bookmarked) and shows 100 entries.
 * Audit entries are not events, so on the last page the view reads the entries after the
 * newest one shown when an event says a mutation happened (a pause, a resume, a cancel, a
 * retry) — and on "Check for newer", for the mutations no event announces (purge, DLQ clear,
 * limits, PATCH).
 */
document.addEventListener("alpine:init", () => {
  "use strict";
  const { api, Stream } = window.TQ;
  const PAGE = 100;
  const MUTATIONS = ["worker.paused", "worker.resumed", "queue.paused", "queue.resumed",
    "task.cancelled"];

  window.Alpine.data("audit", () => {
    let fetching = false;
    let again = false;
    return {
      entries: [],
      size: 0,
      start: "",
      loaded: false,
      full: false,
      async init() {
        const asked = new URLSearchParams(location.search).get("after");
        this.start = asked || `${Date.now() - 3600 * 1000}-0`;
        await this.$store.tq.ready;
        if (!this.$store.tq.admin) return;
        try {
          const data = await api(`/admin/audit?count=${PAGE}&after=${encodeURIComponent(this.start)}`);
          this.entries = data.entries;
          this.size = data.size;
          this.full = data.entries.length === PAGE;
          this.loaded = true;
        } catch (err) {
          if (err.status !== 401) this.$store.tq.error = err.message;
        }
        new Stream({ after: window.TQ.config.event_id, onBatch: (b) => this.apply(b) }).start();
      },
      apply(batch) {
        const mutated = batch.some((e) => MUTATIONS.includes(e.type) || e.data.requeued_from);
        if (mutated && this.loaded && !this.full) this.newer();
      },
      /** Entries after the newest shown (this is the last page while it is not full). */
      async newer() {
        if (fetching) {
          again = true;
          return;
        }
        fetching = true;
        try {
          const last = this.entries.length ? this.entries[this.entries.length - 1].id : this.start;
          const data = await api(`/admin/audit?count=${PAGE - this.entries.length}` +
            `&after=${encodeURIComponent(last)}`);
          this.entries.push(...data.entries);
          this.size = data.size;
          this.full = this.entries.length >= PAGE;
        } catch (err) {
          if (err.status !== 401) this.$store.tq.error = err.message;
        } finally {
          fetching = false;
        }
        if (again) {
          again = false;
          this.newer();
        }
      },
      nextHref() {
        const last = this.entries[this.entries.length - 1];
        return last ? `?after=${encodeURIComponent(last.id)}` : "";
      },
      detail(entry) {
        return entry.detail && Object.keys(entry.detail).length ? JSON.stringify(entry.detail) : "";
      },
    };
  });
});
