"""Worker-side machinery, installed into the Celery app as consumer bootsteps (main process).

- :class:`Presence` writes this worker's heartbeat record every ``WORKER_HEARTBEAT_SECONDS``
  (joined/left events included) and obeys the pause flag: paused, it cancels every consumer;
  resumed, it adds its queues back in strict priority order (``critical`` first) — kombu
  appends a re-added queue at the end, so re-adding them all is the only way to restore order.
- :class:`~celery_app.maintenance.Maintenance` promotes delayed tasks and reaps lost ones.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import Celery, bootsteps
from celery.worker import state as worker_state

from . import model

logger = logging.getLogger(__name__)

#: A worker record outlives this many missed heartbeats.
HEARTBEAT_TTL_INTERVALS = 3
#: How often a worker checks its pause flag.
PAUSE_CHECK_SECONDS = 0.25


class Presence(bootsteps.StartStopStep):
    """Keeps this worker's heartbeat record in Redis and applies pause/resume."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timers: list[Any] = []
        self._started_at = ""
        self._queues: list[str] = []
        self._paused = False

    def start(self, consumer: Any) -> None:
        if not self._queues:  # the -Q queues, remembered across pause/resume
            names = {q.name for q in consumer.task_consumer.queues}
            self._queues = [q for q in model.QUEUES if q in names]
        self.check_pause(consumer)  # before the event loop consumes anything
        self.beat(consumer)
        interval = consumer.app.settings.worker_heartbeat_seconds
        self._timers = [
            consumer.timer.call_repeatedly(interval, self.beat, (consumer,), priority=10),
            consumer.timer.call_repeatedly(PAUSE_CHECK_SECONDS, self.check_pause, (consumer,)),
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

        ``beat_ms`` is read from Redis's clock — the clock claims are stamped with — before
        the snapshot, so anything claimed earlier is in it.
        """
        beat_ms = consumer.app.runtime.store.now_ms()
        self._started_at = self._started_at or model.iso_ms(beat_ms)
        held = set(worker_state.reserved_requests) | set(worker_state.active_requests)
        active = len(worker_state.active_requests)
        state = "paused" if self._paused else "busy" if active else "idle"
        return {
            "id": consumer.hostname,
            "state": state,
            "started_at": self._started_at,
            "active_tasks": active,
            "concurrency": consumer.pool.num_processes if consumer.pool else 0,
            "queues": json.dumps(self._queues),
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

    def check_pause(self, consumer: Any) -> None:
        """Apply the pause flag if it changed."""
        workers = consumer.app.runtime.workers
        try:
            wanted = workers.is_paused(consumer.hostname)
        except Exception:
            logger.warning("could not read the pause flag", exc_info=True)
            return
        if wanted == self._paused:
            return
        for queue in self._queues:
            consumer.cancel_task_queue(queue)
        if not wanted:
            for queue in self._queues:  # critical first: kombu appends each re-added queue
                consumer.add_task_queue(queue, routing_key=queue)
        self._paused = wanted
        logger.info("worker %s", "paused" if wanted else "resumed")
        self.beat(consumer)
        workers.emit(f"worker.{'paused' if wanted else 'resumed'}", consumer.hostname)


def install(celery: Celery) -> None:
    """Add the worker bootsteps to ``celery``."""
    from .maintenance import Maintenance

    celery.steps["consumer"].add(Presence)
    celery.steps["consumer"].add(Maintenance)

