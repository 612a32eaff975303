"""The worker registry: what every worker wrote about itself, and the pause flags it obeys.

Workers write their own records (``tq:worker:<hostname>``, expiring after three heartbeat
intervals) from their main process; reading them never broadcasts to workers. Pausing a
worker or a queue is a persisted flag that each worker applies and confirms
(:mod:`celery_app.control`) and re-applies when it restarts.

Keys (:mod:`celery_app.keys`): ``tq:workers`` (zset of known workers), ``tq:worker:<hostname>``
(each record), ``tq:gates`` (worker and queue pause flags),
and worker and queue events on ``tq:events``.
"""

from __future__ import annotations

import json
from typing import Any

from . import keys, model
from .audit import Audit, argv
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
    """The API's view of a record. ``state`` joins what the worker was told (``paused``) with
    what it applied (its record): ``pausing`` / ``resuming`` until it confirmed."""
    worker: dict[str, Any] = {name: record[name] for name in _PUBLIC if name in record}
    for name in _INT_FIELDS:
        worker[name] = int(worker.get(name, 0))
    worker["queues"] = json.loads(record.get("queues", "[]"))
    applied = worker.get("state") == "paused"
    if paused and not applied:
        worker["state"] = "pausing"
    elif applied and not paused:
        worker["state"] = "resuming"
    return worker


def queues_in(gate_fields: list[str]) -> set[str]:
    """The paused queue names among ``tq:gates``'s field names (:func:`keys.queue_gate`)."""
    prefix = keys.queue_gate("")
    return {name.removeprefix(prefix) for name in gate_fields if name.startswith(prefix)}


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
        pipe.hgetall(keys.gates())
        *records, gates = pipe.execute()
        return [_public(r, keys.worker_gate(r["id"]) in gates) for r in records if r]

    def get(self, hostname: str) -> dict[str, Any]:
        """One live worker, or :class:`WorkerNotFound`."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.worker(hostname))
        pipe.hexists(keys.gates(), keys.worker_gate(hostname))
        record, paused = pipe.execute()
        if not record:
            raise WorkerNotFound()
        return _public(record, bool(paused))

    def set_paused(self, hostname: str, paused: bool, audit: Audit | None = None) -> None:
        """Persist a worker's pause flag (:class:`WorkerNotFound` for an unknown worker); the
        worker applies it (:mod:`celery_app.control`) and keeps it across its restarts. With
        ``audit``, its entry is written in the same ``MULTI``."""
        self.get(hostname)
        pipe = self.redis.pipeline(transaction=True)
        if paused:
            pipe.hset(keys.gates(), keys.worker_gate(hostname), model.iso(model.now()))
        else:
            pipe.hdel(keys.gates(), keys.worker_gate(hostname))
        if audit is not None:
            audit.add(pipe, self.scripts)
        pipe.execute()

    def set_queue_paused(self, queue: str, paused: bool, audit: Audit | None = None) -> bool:
        """Persist a queue's pause flag, emitting ``queue.paused``/``queue.resumed`` (and writing
        ``audit``) when it changed (one script call); true if it changed."""
        return bool(self.scripts.run("queue_pause", [keys.gates()], queue,
                                     "1" if paused else "0", argv(audit)))

    def paused_queues(self) -> set[str]:
        """Names of the paused queues."""
        return queues_in(self.redis.hkeys(keys.gates()))

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
