"""Worker-side machinery, installed into the Celery app as consumer bootsteps (main process).

- :class:`Presence` writes this worker's heartbeat record every ``WORKER_HEARTBEAT_SECONDS``
  (joined/left events included) and keeps the worker's consumers in line with the persisted
  worker and queue pause flags (:mod:`celery_app.control`): at start, before the event loop
  consumes anything; at once when the ``taskqueue_sync`` control command arrives; and at every
  heartbeat, for a command it missed.
- :class:`~celery_app.maintenance.Maintenance` promotes delayed tasks and reaps lost ones.
- :class:`~celery_app.webhooks.Deliverer` delivers completion webhooks (own threads).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import Celery, bootsteps
from celery.worker import state as worker_state

from . import keys, model
from .control import Consumption

logger = logging.getLogger(__name__)

#: A worker record outlives this many missed heartbeats.
HEARTBEAT_TTL_INTERVALS = 3


class Presence(bootsteps.StartStopStep):
    """Keeps this worker's heartbeat record in Redis and applies pause flags."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timers: list[Any] = []
        self._started_at = ""
        self.consumption = Consumption()

    def start(self, consumer: Any) -> None:
        try:  # settings an earlier key layout kept, before the flags are first read
            moved = consumer.app.runtime.scripts.run("upgrade", [keys.gates()])
            if moved:
                logger.info("carried %d pause and limit settings into %s", moved, keys.gates())
        except Exception:  # Redis away: the next worker to start carries them
            logger.warning("could not carry earlier pause and limit settings", exc_info=True)
        self.consumption.remember_queues(consumer)
        consumer.taskqueue_presence = self
        self.refresh(consumer)  # before the event loop consumes anything
        self.beat(consumer)
        interval = consumer.app.settings.worker_heartbeat_seconds
        self._timers = [
            consumer.timer.call_repeatedly(interval, self.beat, (consumer,), priority=10),
            consumer.timer.call_repeatedly(interval, self.refresh, (consumer,)),
        ]

    def stop(self, consumer: Any) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []

    def shutdown(self, consumer: Any) -> None:
        self.stop(consumer)
        try:
            consumer.app.runtime.workers.left(consumer.hostname, "shutdown", drop_record=True)
        except Exception:  # the record expires by itself; the reaper emits worker.left
            logger.warning("could not remove worker record", exc_info=True)

    def record(self, consumer: Any) -> dict[str, Any]:
        """This worker's heartbeat record (``last_heartbeat`` is stamped by the script).

        ``state`` is what the worker applied, not what it was told. ``beat_ms`` is read from
        Redis's clock before the snapshot, so anything claimed earlier is in it.
        """
        beat_ms = consumer.app.runtime.store.now_ms()
        self._started_at = self._started_at or model.iso_ms(beat_ms)
        held = set(worker_state.reserved_requests) | set(worker_state.active_requests)
        active = len(worker_state.active_requests)
        state = "paused" if self.consumption.paused else "busy" if active else "idle"
        return {
            "id": consumer.hostname,
            "state": state,
            "started_at": self._started_at,
            "active_tasks": active,
            "concurrency": consumer.pool.num_processes if consumer.pool else 0,
            "queues": json.dumps(self.consumption.own),
            "active_ids": json.dumps(sorted(r.id for r in held)),
            "beat_ms": beat_ms,
        }

    def beat(self, consumer: Any) -> None:
        """Write the record; a failure is logged and retried at the next beat."""
        settings = consumer.app.settings
        ttl_ms = int(settings.worker_heartbeat_seconds * HEARTBEAT_TTL_INTERVALS * 1000)
        try:
            consumer.app.runtime.workers.beat(consumer.hostname, self.record(consumer), ttl_ms)
        except Exception:
            logger.warning("heartbeat failed", exc_info=True)

    def sync(self, consumer: Any) -> dict[str, Any]:
        """Apply the flags now (raises when Redis cannot be read); the control reply."""
        runtime = consumer.app.runtime
        paused_changed, queues_changed = self.consumption.apply(consumer, runtime.redis)
        if paused_changed or queues_changed:
            self.beat(consumer)
        if paused_changed:
            paused = self.consumption.paused
            logger.info("worker %s", "paused" if paused else "resumed")
            runtime.workers.emit(f"worker.{'paused' if paused else 'resumed'}", consumer.hostname)
        return self.consumption.reply(consumer)

    def refresh(self, consumer: Any) -> None:
        """:meth:`sync` on the timer: a failure is logged and tried again at the next beat."""
        try:
            self.sync(consumer)
        except Exception:
            logger.warning("could not apply the pause flags", exc_info=True)


def install(celery: Celery) -> None:
    """Add the worker bootsteps to ``celery`` and register its remote-control command."""
    from . import control  # noqa: F401  (registers taskqueue_sync)
    from .maintenance import Maintenance
    from .webhooks import Deliverer

    celery.steps["consumer"].add(Presence)
    celery.steps["consumer"].add(Maintenance)
    celery.steps["consumer"].add(Deliverer)
