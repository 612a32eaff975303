/*
 * taskqueue console — the shared part: credentials, the API client and the event stream.
 *
 * No build step: this file is served as written. The views (views.js) are Alpine.js components;
 * this file gives them
 *   - TQ.api(path, options): fetch with the tab's credentials; JSON in and out; throws ApiError
 *     ({status, message}); a 401 signs the tab out and asks for credentials again;
 *   - TQ.Stream: one /ws connection that resumes with last_event_id after any drop (no event is
 *     missed or applied twice: ids are compared) and hands events to its view in batches, once
 *     per animation frame, so a burst of thousands of events costs one render, not thousands;
 *   - the `tq` Alpine store: auth state, role, link state, the page's error banner.
 * Credentials live in sessionStorage: this tab only, gone when it closes.
 */
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("tq-config").textContent);
  const AUTH_KEY = "taskqueue.auth";
  const FINAL = ["completed", "failed", "dead_letter", "cancelled"];

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  function loadAuth() {
    try {
      return JSON.parse(sessionStorage.getItem(AUTH_KEY));
    } catch {
      return null;
    }
  }

  function authHeaders(auth) {
    if (!auth) return {};
    return auth.kind === "key" ? { "X-API-Key": auth.secret }
      : { Authorization: `Bearer ${auth.secret}` };
  }

  /** One HTTP request; resolves to the parsed JSON body, rejects with ApiError. */
  async function request(path, { method = "GET", json, auth } = {}) {
    const headers = authHeaders(auth);
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: "no-store" });
    } catch {
      throw new ApiError(0, { message: "cannot reach the service" });
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { message: text.slice(0, 200) };
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function tq() {
    return window.Alpine.store("tq");
  }

  /** The API with this tab's credentials; a 401 asks for new ones. */
  async function api(path, options = {}) {
    try {
      return await request(path, { ...options, auth: tq().auth });
    } catch (err) {
      if (err.status === 401) tq().refused();
      throw err;
    }
  }

  /** multipart upload with progress (fetch cannot report upload progress; XHR can). */
  function upload(path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      for (const [name, value] of Object.entries(authHeaders(tq().auth))) {
        xhr.setRequestHeader(name, value);
      }
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
      xhr.onerror = () => reject(new ApiError(0, { message: "cannot reach the service" }));
      xhr.onload = () => {
        let data = null;
        try {
          data = JSON.parse(xhr.responseText);
        } catch {
          data = { message: xhr.responseText.slice(0, 200) };
        }
        if (xhr.status === 401) tq().refused();
        if (xhr.status >= 200 && xhr.status < 300) resolve(data);
        else reject(new ApiError(xhr.status, data));
      };
      xhr.send(form);
    });
  }

  /** Stream ids ("<ms>-<seq>") compared as numbers: -1, 0 or 1. */
  function compareIds(a, b) {
    const [am, as] = a.split("-").map(BigInt);
    const [bm, bs] = b.split("-").map(BigInt);
    if (am !== bm) return am < bm ? -1 : 1;
    return as === bs ? 0 : as < bs ? -1 : 1;
  }

  const RETRY_MS = [250, 500, 1000, 2000, 5000];

  /**
   * The event stream for one view: `/ws` with `types` / `task_id`, resumed from `after`.
   * `onBatch(events)` is called at most once per animation frame with every event that arrived
   * since the last call, in stream order, each exactly once.
   */
  class Stream {
    constructor({ types = null, taskId = null, after = null, onBatch }) {
      this.types = types;
      this.taskId = taskId;
      this.lastId = after;
      this.onBatch = onBatch;
      this.pending = [];
      this.frame = null;
      this.timer = null;
      this.failures = 0;
      this.stopped = false;
      this.ws = null;
      TQ.streams.push(this);
    }

    url() {
      const params = new URLSearchParams();
      if (this.types) params.set("types", this.types);
      if (this.taskId) params.set("task_id", this.taskId);
      if (this.lastId) params.set("last_event_id", this.lastId);
      const auth = tq().auth;
      if (auth) params.set(auth.kind === "key" ? "api_key" : "token", auth.secret);
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      return `${scheme}//${location.host}/ws?${params}`;
    }

    start() {
      if (tq().authEnabled && !tq().auth) return this; // signed out: the page restarts on sign-in
      this.stopped = false;
      if (tq().link !== "live") tq().setLink(this.failures ? "reconnecting" : "connecting");
      const ws = new WebSocket(this.url());
      this.ws = ws;
      ws.onopen = () => {
        this.failures = 0;
        tq().setLink("live");
      };
      ws.onmessage = (message) => this.receive(JSON.parse(message.data));
      ws.onclose = () => {
        if (this.ws !== ws || this.stopped) return;
        tq().setLink("reconnecting");
        const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
        this.failures += 1;
        setTimeout(() => this.stopped || this.start(), delay);
      };
      return this;
    }

    stop() {
      this.stopped = true;
      if (this.ws) this.ws.close();
    }

    receive(event) {
      if (event.type === "error") {
        tq().error = `event stream: ${event.message}`;
        return;
      }
      if (this.lastId && compareIds(event.id, this.lastId) <= 0) return; // replayed twice
      this.lastId = event.id;
      this.pending.push(event);
      if (this.frame === null) {
        this.frame = requestAnimationFrame(() => this.flush());
        // Hidden tabs get no animation frames: drain at least every second anyway.
        this.timer = setTimeout(() => this.flush(), 1000);
      }
    }

    flush() {
      cancelAnimationFrame(this.frame);
      clearTimeout(this.timer);
      this.frame = null;
      const batch = this.pending;
      this.pending = [];
      if (!batch.length) return;
      this.onBatch(batch);
      // After Alpine has patched the DOM: the moment these events are on screen.
      window.Alpine.nextTick(() =>
        document.dispatchEvent(new CustomEvent("tq:rendered", { detail: batch })));
    }
  }

  function signInDialog() {
    return document.getElementById("login");
  }

  document.addEventListener("alpine:init", () => {
    let resolveReady;
    const ready = new Promise((resolve) => {
      resolveReady = resolve;
    });
    window.Alpine.store("tq", {
      authEnabled: config.auth_enabled,
      auth: config.auth_enabled ? loadAuth() : null,
      role: config.auth_enabled ? (loadAuth() || {}).role || null : "admin",
      link: "",
      linkText: "",
      error: "",
      signInMessage: "",
      ready,
      resolveReady,
      get admin() {
        return this.role === "admin";
      },
      setLink(state) {
        this.link = state;
        this.linkText = { live: "live", connecting: "connecting…",
          reconnecting: "reconnecting…" }[state] || state;
      },
      /** Credentials checked: keep them for this tab and start the page. */
      signedIn(auth) {
        sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
        this.auth = auth;
        this.role = auth.role;
        signInDialog().close();
        this.resolveReady();
      },
      signOut(message = "") {
        sessionStorage.removeItem(AUTH_KEY);
        this.auth = null;
        this.role = null;
        for (const stream of TQ.streams) stream.stop();
        this.signInMessage = message;
        signInDialog().showModal();
      },
      refused() {
        if (this.authEnabled) {
          this.signOut("Those credentials were refused (401 Unauthorized): sign in again.");
        }
      },
    });
  });

  document.addEventListener("alpine:initialized", () => {
    const store = tq();
    if (!store.authEnabled || store.auth) store.resolveReady();
    else signInDialog().showModal();
  });

  /** Check a credential against the API and learn its role (GET /api/v1/whoami). */
  async function checkCredential(kind, secret) {
    const auth = { kind, secret };
    auth.role = (await request("/api/v1/whoami", { auth })).role;
    return auth;
  }

  function ago(seconds) {
    if (seconds === null || Number.isNaN(seconds)) return "—";
    if (seconds < 60) return `${Math.max(0, Math.floor(seconds))} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  }

  function clock(iso) {
    return iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "—";
  }

  const TQ = {
    config, api, upload, request, checkCredential, ApiError, Stream, compareIds, ago, clock,
    FINAL, streams: [],
  };
  window.TQ = TQ;
})();
