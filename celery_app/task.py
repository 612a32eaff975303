"""The task base class: claim, run the handler, record the outcome.

Everything that must happen for correctness happens here, in the pool child, and not in signal
receivers (Celery logs and swallows their exceptions):

1. **Claim** — one Lua call moves the envelope ``pending → running`` if, and only if, this
   message is the task's live delivery, and takes the task's lease. A cancelled, finished,
   already running or stale (redelivered, superseded) message raises
   :class:`~celery.exceptions.Ignore`: acknowledged, never executed. A live message that may
   not start now (its worker or queue is paused, an earlier execution still holds the lease)
   raises :class:`~celery.exceptions.Reject` with ``requeue``: back on its queue, still pending.
   One that a limit of its type holds back (:mod:`celery_app.limits`) is parked until it may
   start and its message acknowledged (``Ignore``): no process waits, no attempt is used.
2. **Run** the handler with a progress reporter installed, renewing the lease from this pool
   child (:mod:`celery_app.lease`).
3. **Record** the outcome atomically: ``completed``; ``retrying`` with the next message parked
   until its backoff ends; or ``dead_letter``. Celery sees the same story (``SUCCESS``, ``RETRY``
   or ``FAILURE``), so Flower and ``AsyncResult`` agree with the envelope.

Redis may be away for a moment (a Sentinel failover, a restart): the claim and the outcome are
tried again for up to :data:`RIDE_OUT_SECONDS` (each is refused as stale if it had already been
applied), so an execution that ran is recorded once instead of being run again; a progress
report that cannot be written is skipped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import Task
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded
from celery.worker.request import Request

from handlers.errors import PermanentError
from handlers.progress import reporting_to

from . import model
from .connection import UNREACHABLE, ride_out
from .defaults import DEFAULT_TIMEOUT_SECONDS
from .messages import DELIVERY_HEADER
from .payloads import InvalidPayload, check_payload
from .store import Claim, NewTask

logger = logging.getLogger(__name__)

#: A handler's progress reports reach Redis at most this often (the last one always does).
PROGRESS_INTERVAL_SECONDS = 0.25
#: How long claim and outcome writes wait for Redis to come back: a Sentinel failover with
#: ``down-after-milliseconds 1000`` completes in well under 15 s. Past it the execution's record
#: is lost and the reaper runs the task again (at-least-once).
RIDE_OUT_SECONDS = 30.0


def describe(exc: BaseException) -> str:
    """The error text stored in the envelope: the exception's message, else its class name."""
    return str(exc) or type(exc).__name__


class HandlerRequest(Request):
    """The worker's main-process view of one execution: records the endings the pool child
    cannot — a hard time limit that killed it, or the child dying under the task.

    Either is a failed attempt (retry with backoff, or the DLQ when retries are exhausted), so a
    task that kills its process every time ends in the DLQ after ``max_retries``.
    """

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if not soft:
            self._record_lost(f"timed out after {self._soft_limit()}s (killed at {timeout:g}s)")

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> None:
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        if isinstance(exc_info.exception, WorkerLostError):
            self._record_lost(f"worker process lost: {exc_info.exception}")

    def _soft_limit(self) -> Any:
        limits = self.request_dict.get("timelimit") or [None, None]
        return limits[1]

    def _record_lost(self, error: str) -> None:
        """Fail the execution if it still holds the task (a second report is a no-op)."""
        store = self.task.app.runtime.store
        delivery = self.request_dict.get(DELIVERY_HEADER) or ""
        try:
            envelope = store.get(self.id)
            state = store.fail(envelope, delivery, error)
            logger.warning("%s[%s]: %s -> %s", self.name, self.id, error, state)
        except Exception:  # the reaper recovers the task from its heartbeat record
            logger.exception("could not record the loss of %s[%s]", self.name, self.id)


class HandlerTask(Task):
    """Base class of every handler's Celery task."""

    #: Payload validation happens at submit time against the handler's signature.
    typing = False
    Request = HandlerRequest

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.called_directly:
            return self.run(*args, **kwargs)
        store = self.app.runtime.store
        delivery = getattr(request, DELIVERY_HEADER, None) or ""

        def claim_it() -> Claim:
            return store.claim(request.id, delivery, request.hostname or "")

        claim = ride_out(claim_it, RIDE_OUT_SECONDS)
        if claim.state == "missing":  # published around the envelope (e.g. Redis hiccup)
            self._adopt(request, kwargs, delivery)
            claim = ride_out(claim_it, RIDE_OUT_SECONDS)
        if not claim.ok:
            if claim.throttled_until_ms is not None:  # a limit of its type: parked, not held
                logger.info("not starting %s[%s] yet: throttled", self.name, request.id)
                store.throttle(request.id, delivery, claim.throttled_until_ms)
                raise Ignore()
            if claim.requeue:  # may run later (paused, or an earlier execution still runs)
                logger.info("not starting %s[%s] now: %s", self.name, request.id, claim.reason)
                raise Reject(claim.reason, requeue=True)
            logger.info("skipping %s[%s]: %s", self.name, request.id, claim.reason)
            raise Ignore()
        envelope = {**(claim.envelope or {}), "payload": dict(kwargs)}
        try:  # a message that bypassed the publish check: an argument error is never retried
            if args:
                raise InvalidPayload("handler tasks take keyword arguments (the payload)")
            check_payload(self.name, kwargs)
        except InvalidPayload as exc:
            store.fail(envelope, delivery, f"invalid arguments: {exc}", retryable=False)
            raise
        lease = self.app.runtime.leases.hold(request.id, delivery)
        try:
            with lease, reporting_to(self._reporter(request.id, delivery)):
                result = self.run(*args, **kwargs)
            result_json = model.dumps(result)  # one the envelope cannot hold: a failure
        except SoftTimeLimitExceeded as exc:
            self._failed(envelope, delivery, exc, f"timed out after {envelope.get('timeout')}s")
        except PermanentError as exc:
            error = describe(exc)
            ride_out(lambda: store.fail(envelope, delivery, error, retryable=False),
                     RIDE_OUT_SECONDS)
            raise
        except Exception as exc:
            self._failed(envelope, delivery, exc, describe(exc))
        ride_out(lambda: store.complete(request.id, delivery, result, result_json),
                 RIDE_OUT_SECONDS)
        return result

    def _adopt(self, request: Any, kwargs: dict[str, Any], delivery: str) -> None:
        """Create the envelope of a task that arrived without one."""
        queue = (request.delivery_info or {}).get("routing_key")
        limits = request.timelimit or (None, None)
        new = NewTask(
            type=self.name,
            payload=dict(kwargs),
            priority=queue if queue in model.PRIORITIES else model.DEFAULT_PRIORITY,
            timeout=int(limits[1] or DEFAULT_TIMEOUT_SECONDS),
            task_id=request.id,
        )
        self.app.runtime.store.submit(new, adopt_delivery=delivery)

    def _failed(self, envelope: dict, delivery: str, exc: Exception, error: str) -> None:
        """Record a failed execution and raise what tells Celery the same."""
        store = self.app.runtime.store
        state = ride_out(lambda: store.fail(envelope, delivery, error), RIDE_OUT_SECONDS)
        if state == model.RETRYING:
            raise Retry(error, exc=exc)
        raise exc

    def _reporter(self, task_id: str, delivery: str):
        store = self.app.runtime.store
        last = 0.0

        def report(percent: int, message: str | None) -> None:
            nonlocal last
            moment = time.monotonic()
            if percent < 100 and moment - last < PROGRESS_INTERVAL_SECONDS:
                return
            last = moment
            try:
                store.progress(task_id, delivery, percent, message)
            except UNREACHABLE:  # a progress report is not worth stalling the handler for
                logger.warning("progress of %s not recorded: Redis unreachable", task_id)

        return report
