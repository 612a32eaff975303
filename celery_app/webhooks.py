"""Completion webhooks: delivered by workers, outside any handler, at least once.

A task created with ``callback_url`` gets a delivery job in the same Lua call that makes it
final (``lua/lib.lua`` ``queue_callback``): ``tq:webhook:<delivery>`` plus its due time in the
``tq:webhooks`` zset. Every worker's main process runs a :class:`Deliverer` (a bootstep with a
poller thread and ``WEBHOOK_CONCURRENCY`` request threads), so a slow receiver only ever holds
a delivery thread, never a pool process or a task.

- **Lease.** Claiming sets a job's score to now + lease (``2 × WEBHOOK_TIMEOUT_SECONDS + 1 s``,
  longer than one request can take); a worker SIGKILLed mid-request leaves the job due again when
  the lease runs out, and another worker delivers it. Only the lease holder may record an
  outcome. Receivers dedupe on ``X-Taskqueue-Delivery``, the same for every attempt.
- **Request.** ``POST`` of ``{"event": "task.<state>", "task": <envelope at that moment>}``
  (compact JSON, the same bytes on every attempt) with ``Content-Type: application/json``,
  ``X-Taskqueue-Delivery``, ``X-Taskqueue-Event`` and, with ``WEBHOOK_SECRET``,
  ``X-Taskqueue-Signature: sha256=<hex HMAC-SHA256 of the body>``; see :mod:`.webhook_http`
  for the address checks.
- **Outcome.** 2xx → ``delivered``. Any other status, a refused connection, a timeout or a name
  that does not resolve → ``retrying`` after :func:`backoff_seconds`, until
  ``WEBHOOK_MAX_ATTEMPTS`` requests were made → ``failed``. A refused target → ``failed`` at
  once, nothing sent. Each outcome updates the envelope's ``callback`` object, emits
  ``task.callback`` and counts ``taskqueue_webhook_deliveries_total{outcome}``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import bootsteps

from . import model
from .scripts import Scripts
from .settings import Settings
from .webhook_http import TargetRefused, post, resolve

logger = logging.getLogger(__name__)

#: How often an idle deliverer looks for due jobs (every worker runs one: an idle cluster's
#: Redis load is a few commands per worker per second; a webhook goes out within a second of its
#: task's end). A deliverer that found work looks again at once.
POLL_INTERVAL_SECONDS = 1.0
#: Margin of a lease beyond the two timeouts (connect, read) a request may take.
LEASE_GRACE_SECONDS = 1.0
USER_AGENT = "taskqueue-webhook/1"
#: Outcome label values of ``taskqueue_webhook_deliveries_total``.
OUTCOMES = ("delivered", "retrying", "failed", "refused")


def signature(secret: str, body: bytes) -> str:
    """``X-Taskqueue-Signature``: ``sha256=`` + hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_of(event: str, snapshot: list[str]) -> bytes:
    """The request body from the job's envelope snapshot (flat hash fields)."""
    fields = dict(zip(snapshot[0::2], snapshot[1::2], strict=True))
    return model.dumps({"event": event, "task": model.decode(fields)}).encode()


def backoff_seconds(settings: Settings, attempts: int) -> float:
    """Delay after the ``attempts``-th failed request: base × 2^(n-1) × [0.5, 1.5), capped."""
    base = settings.webhook_backoff_seconds * 2 ** (attempts - 1)
    return min(settings.webhook_backoff_max_seconds, base * random.uniform(0.5, 1.5))


def lease_ms(settings: Settings) -> int:
    """How long a claimed delivery stays with its deliverer before others may take it."""
    return int((2 * settings.webhook_timeout_seconds + LEASE_GRACE_SECONDS) * 1000)


class Webhooks:
    """Claims and records deliveries through the store's scripts (one round trip each)."""

    def __init__(self, scripts: Scripts, settings: Settings) -> None:
        self.scripts = scripts
        self.settings = settings

    def claim(self, limit: int, token: str) -> list[tuple[str, dict[str, Any]]]:
        """Lease up to ``limit`` due deliveries to ``token``: ``[(delivery id, job), …]``."""
        claimed = self.scripts.run("webhook_claim", [], limit, lease_ms(self.settings), token)
        jobs = []
        for delivery, flat in claimed:
            job = dict(zip(flat[0::2], flat[1::2], strict=True))
            jobs.append((delivery, job))
        return jobs

    def record(
        self,
        delivery: str,
        token: str,
        state: str,
        *,
        status: int | None = None,
        error: str = "",
        delay_seconds: float = 0.0,
        outcome: str | None = None,
    ) -> bool:
        """Store an attempt's outcome; false when the lease was lost to another deliverer."""
        answer = self.scripts.run(
            "webhook_record",
            [],
            delivery,
            token,
            state,
            "" if status is None else status,
            error[:500],
            int(delay_seconds * 1000),
            outcome or state,
        )
        return answer == "ok"

    def deliver(self, delivery: str, job: dict[str, Any], token: str) -> str:
        """Make one attempt of a claimed delivery and record it; returns the metric outcome."""
        settings = self.settings
        attempts = int(job["attempts"])
        if attempts > settings.webhook_max_attempts:  # its last holder died mid-request
            self.record(delivery, token, "failed", error="gave up: attempts exhausted")
            return "failed"
        status: int | None = None
        try:
            target = resolve(job["url"], settings.webhook_allow_private)
            body = body_of(job["event"], json.loads(job["snapshot"]))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Taskqueue-Delivery": delivery,
                "X-Taskqueue-Event": job["event"],
            }
            if settings.webhook_secret:
                headers["X-Taskqueue-Signature"] = signature(settings.webhook_secret, body)
            status = post(target, body, headers, settings.webhook_timeout_seconds)
            if 200 <= status < 300:
                self.record(delivery, token, "delivered", status=status)
                return "delivered"
            error = f"HTTP {status}"
        except TargetRefused as exc:  # never requested, never retried
            self.record(delivery, token, "failed", error=str(exc), outcome="refused")
            return "refused"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if attempts >= settings.webhook_max_attempts:
            self.record(delivery, token, "failed", status=status, error=error)
            return "failed"
        self.record(
            delivery,
            token,
            "retrying",
            status=status,
            error=error,
            delay_seconds=backoff_seconds(settings, attempts),
        )
        return "retrying"


class Deliverer(bootsteps.StartStopStep):
    """Worker bootstep: a poller thread that leases due deliveries, ``WEBHOOK_CONCURRENCY``
    threads that make the requests. Lives in the worker's main process, beside the consumer."""

    requires = {"celery_app.worker:Presence"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._busy = 0
        self._lock = threading.Lock()

    def start(self, consumer: Any) -> None:
        if self._poller is not None:
            return
        settings = consumer.app.settings
        self._stop.clear()
        self._pool = ThreadPoolExecutor(settings.webhook_concurrency, thread_name_prefix="webhook")
        webhooks = Webhooks(consumer.app.runtime.scripts, settings)
        self._poller = threading.Thread(
            target=self._poll, args=(webhooks,), daemon=True, name="webhook-poller"
        )
        self._poller.start()

    def stop(self, consumer: Any) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=2)
            self._poller = None
        if self._pool is not None:  # requests in flight end within their timeout
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def shutdown(self, consumer: Any) -> None:
        self.stop(consumer)

    def _poll(self, webhooks: Webhooks) -> None:
        token = uuid.uuid4().hex  # this deliverer's lease token
        concurrency = webhooks.settings.webhook_concurrency
        while not self._stop.is_set():
            with self._lock:
                free = concurrency - self._busy
            claimed = []
            if free > 0:
                try:
                    claimed = webhooks.claim(free, token)
                except Exception:
                    logger.warning("could not claim webhook deliveries", exc_info=True)
            for delivery, job in claimed:
                with self._lock:
                    self._busy += 1
                assert self._pool is not None
                self._pool.submit(self._deliver, webhooks, delivery, job, token)
            if not claimed:
                self._stop.wait(POLL_INTERVAL_SECONDS)

    def _deliver(self, webhooks: Webhooks, delivery: str, job: dict[str, Any], token: str) -> None:
        try:
            outcome = webhooks.deliver(delivery, job, token)
            logger.info("webhook %s for %s: %s", delivery, job.get("task_id"), outcome)
        except Exception:  # Redis gone while recording: the lease expires, another tries
            logger.warning("webhook delivery %s failed", delivery, exc_info=True)
        finally:
            with self._lock:
                self._busy -= 1
