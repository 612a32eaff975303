"""The worker registry: what every worker wrote about itself, and the pause flags it obeys.

Workers write their own records (``tq:worker:<hostname>``, expiring after three heartbeat
intervals) from their main process; readers never broadcast to workers. Pausing is a persisted
flag in ``tq:paused`` that each worker applies within a quarter second and re-applies when it
restarts.

Keys (:mod:`celery_app.keys`): ``tq:workers`` (zset of known workers), ``tq:worker:<hostname>``
(each record), ``tq:paused`` (pause flags), and worker events on ``tq:events``.
"""

from __future__ import annotations

import json
from typing import Any

from . import keys, model
from .errors import TaskqueueError
from .scripts import Scripts


class WorkerNotFound(TaskqueueError):
    """No live worker with that id."""

    status = 404

    def __init__(self) -> None:
        super().__init__("worker not found")


_INT_FIELDS = ("active_tasks", "concurrency")
_PUBLIC = ("id", "state", "started_at", "last_heartbeat", "active_tasks", "concurrency", "queues")


def _public(record: dict[str, str], paused: bool) -> dict[str, Any]:
    worker: dict[str, Any] = {name: record[name] for name in _PUBLIC if name in record}
    for name in _INT_FIELDS:
        worker[name] = int(worker.get(name, 0))
    worker["queues"] = json.loads(record.get("queues", "[]"))
    if paused:
        worker["state"] = "paused"
    return worker


class Workers:
    """Reads the registry and sets pause flags; O(workers) Redis work, one round trip."""

    def __init__(self, client: Any, scripts: Scripts) -> None:
        self.redis = client
        self.scripts = scripts

    def all(self) -> list[dict[str, Any]]:
        """Every live worker, by id."""
        names = self.redis.zrange(keys.workers(), 0, -1)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.worker(name))
        pipe.hgetall(keys.paused())
        *records, paused = pipe.execute()
        return [_public(r, r["id"] in paused) for r in records if r]

    def get(self, hostname: str) -> dict[str, Any]:
        """One live worker, or :class:`WorkerNotFound`."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.worker(hostname))
        pipe.hexists(keys.paused(), hostname)
        record, paused = pipe.execute()
        if not record:
            raise WorkerNotFound()
        return _public(record, bool(paused))

    def pause(self, hostname: str) -> dict[str, Any]:
        """Tell a worker to stop taking tasks (running ones finish); survives its restart."""
        self.get(hostname)
        self.redis.hset(keys.paused(), hostname, model.iso(model.now()))
        return self.get(hostname)

    def resume(self, hostname: str) -> dict[str, Any]:
        """Let a paused worker take tasks again, strictly in priority order."""
        self.get(hostname)
        self.redis.hdel(keys.paused(), hostname)
        return self.get(hostname)

    def is_paused(self, hostname: str) -> bool:
        """Whether ``hostname`` should be paused (read by the worker itself)."""
        return bool(self.redis.hexists(keys.paused(), hostname))

    def beat(self, hostname: str, record: dict[str, Any], ttl_ms: int) -> bool:
        """Write a worker's record; true when it just joined."""
        flat = [item for pair in record.items() for item in pair]
        return bool(self.scripts.run("worker_beat", [], hostname, ttl_ms, *flat))

    def left(self, hostname: str, reason: str, *, drop_record: bool) -> bool:
        """Forget a worker and emit ``worker.left`` (once); true if it was known."""
        return bool(self.scripts.run(
            "worker_left", [], hostname, reason, "1" if drop_record else "0"))

    def forget_departed(self) -> list[str]:
        """Workers whose record expired: forgotten, each with one ``worker.left``."""
        names = self.redis.zrange(keys.workers(), 0, -1)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.exists(keys.worker(name))
        gone = [name for name, alive in zip(names, pipe.execute(), strict=True) if not alive]
        return [name for name in gone if self.left(name, "heartbeat expired", drop_record=False)]

    def emit(self, event_type: str, hostname: str) -> None:
        """Append a worker event (``worker.paused``/``worker.resumed``) to the event stream."""
        data = json.dumps({"worker_id": hostname})
        self.redis.xadd(keys.events(), {"type": event_type, "data": data},
                        maxlen=self.scripts.events_maxlen, approximate=True)

    def count(self) -> int:
        """Live workers."""
        return len(self.all())
