"""A Celery result backend that reads the envelope: one home for a task's result.

The worker records every outcome in the envelope (``tq:task:<id>``) in the same Lua call that
changes its state, so Celery's own copy (``celery-task-meta-<id>``: a ``GET``, ``SETEX`` and
``PUBLISH`` per task, and a ``SUBSCRIBE``/``UNSUBSCRIBE`` per ``apply_async``) would only
repeat it. :class:`EnvelopeBackend` stores nothing and answers ``AsyncResult`` from the
envelope instead, so ``result.get()``, ``.state`` and ``.result`` keep working (``get()`` polls
every ``interval`` seconds, 0.5 by default, as Celery's non-streaming backends do).

========================  ======================  ===========================================
envelope state            Celery state            ``AsyncResult.result``
========================  ======================  ===========================================
(no envelope)             ``PENDING``             ``None``
pending, scheduled        ``PENDING``             ``None``
cancelled                 ``PENDING``             ``None`` (the handler never ran, as Celery saw
                                                  it: a cancelled message is skipped)
running                   ``STARTED``             ``None``
retrying                  ``RETRY``               :class:`TaskFailed` (the last error)
completed                 ``SUCCESS``             the handler's return value
dead_letter, failed       ``FAILURE``             :class:`TaskFailed` (the error text)
========================  ======================  ===========================================

Selected with ``result_backend = "celery_app.backend:EnvelopeBackend"``
(:func:`celery_app.config.celery_config`); it needs the service's app (its runtime).
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.base import BaseBackend

from .errors import TaskNotFound

#: Celery state of each envelope state.
CELERY_STATE = {
    "pending": states.PENDING,
    "scheduled": states.PENDING,
    "cancelled": states.PENDING,
    "running": states.STARTED,
    "retrying": states.RETRY,
    "completed": states.SUCCESS,
    "dead_letter": states.FAILURE,
    "failed": states.FAILURE,
}


class TaskFailed(Exception):
    """What ``AsyncResult.get()`` raises for a task that failed: the envelope's ``error``."""


class EnvelopeBackend(BaseBackend):
    """Reads results from envelopes; stores nothing (the worker's Lua calls already did)."""

    def __init__(self, app: Any, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(app, url=url, **kwargs)

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Nothing to store: the worker's Lua call wrote the outcome into the envelope. (Not
        ``ignore_result``, which would make ``apply_async(...).get()`` return ``None``.)"""
        return result

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        return result

    def _forget(self, task_id: str) -> None:
        """Nothing to forget: the envelope is kept or purged by the service's own rules."""

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        """The task's state and result, as Celery's result backends answer them."""
        try:
            envelope = self.app.runtime.store.get(task_id)
        except TaskNotFound:
            return {"task_id": task_id, "status": states.PENDING, "result": None}
        state = CELERY_STATE.get(envelope["state"], states.PENDING)
        result: Any = None
        if state == states.SUCCESS:
            result = envelope.get("result")
        elif state in (states.FAILURE, states.RETRY):
            result = TaskFailed(envelope.get("error") or envelope["state"])
        return {
            "task_id": task_id,
            "status": state,
            "result": result,
            "traceback": None,
            "children": [],
            "date_done": envelope.get("completed_at"),
        }
