"""Batch submit: up to :data:`MAX_BATCH` tasks created and queued all or nothing, in a bounded
number of Redis round trips (``POST /api/v1/tasks/batch``, API.md §4).

Every task goes through the same ``submit`` script as a single submit — envelope, indexes,
``task.submitted`` event and Celery message in one step — and the whole batch runs as one
``MULTI``/``EXEC`` transaction: no other client sees part of it, and Redis refuses it as a
whole (OOM, READONLY …) before any of it runs. Round trips, whatever the batch's size: one
``SCRIPT EXISTS`` (redis-py, before a pipeline with scripts) and one ``MULTI … EXEC``; with an
``Idempotency-Key`` two more (``WATCH``, ``GET``); with ``REDIS_MIN_REPLICAS`` one more, the
``WAIT`` for replicas (:func:`_acknowledge`).

Keys: ``tq:idem-batch:<key>`` (:func:`celery_app.keys.batch_idempotency`) holds
``{"hash", "ids"}`` for 24 h. A repeat with the same request returns the first batch's tasks
(as they are now); with another request it is an :class:`~celery_app.errors.IdempotencyMismatch`.
The key is ``WATCH``-ed, so two concurrent first uses create one batch: the loser re-reads.
Batch keys and single-submit keys are separate namespaces.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis

from . import defaults, keys, model, strictjson
from .errors import IdempotencyMismatch
from .replication import NotReplicated
from .store import NewTask, Store, submitted_envelope

#: Most tasks one batch may hold (API.md §4).
MAX_BATCH = 1000


def request_hash(items: list[NewTask]) -> str:
    """SHA-256 (hex) of the batch's requests in order, as canonical JSON."""
    canonical = strictjson.dumps([item.request() for item in items], sort_keys=True,
                                 separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit_batch(store: Store, items: list[NewTask], idempotency_key: str | None = None
                 ) -> tuple[list[dict[str, Any]], bool]:
    """Create and queue ``items`` in one transaction; ``(envelopes in request order, created)``.

    ``created`` is false for a repeated ``idempotency_key`` with the same request (the first
    batch's envelopes are returned). Raises :class:`IdempotencyMismatch` for a repeat with a
    different request, and ``redis`` errors as any write does (the batch then never ran).
    """
    prepared = [store.prepare(item) for item in items]
    digest = request_hash(items) if idempotency_key else ""
    idem = keys.batch_idempotency(idempotency_key) if idempotency_key else None
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                if idem is not None:
                    pipe.watch(idem)
                    seen = pipe.get(idem)
                    if seen is not None:
                        pipe.unwatch()
                        first = _repeat(store, idempotency_key, json.loads(seen), digest)
                        _acknowledge(store)
                        return first, False
                pipe.multi()
                if idem is not None:
                    ids = [task_id for task_id, *_ in prepared]
                    pipe.set(idem, json.dumps({"hash": digest, "ids": ids}),
                             ex=defaults.IDEMPOTENCY_TTL_SECONDS)
                for item, (task_id, delivery, message, flat) in zip(items, prepared, strict=True):
                    due = model.ms(item.scheduled_at) if item.scheduled_at is not None else ""
                    store.scripts.run("submit", [keys.task(task_id)], task_id, "", 0, delivery,
                                      message, due, "", *flat, client=pipe)
                answers = pipe.execute()
                break
            except redis.WatchError:
                continue  # another request took the key first: read what it stored
    _acknowledge(store)
    created = answers[1:] if idem is not None else answers
    return [submitted_envelope(answer, flat)[1]
            for answer, (_, _, _, flat) in zip(created, prepared, strict=True)], True


def _repeat(store: Store, key: str | None, seen: dict[str, Any], digest: str
            ) -> list[dict[str, Any]]:
    """The first batch's envelopes for a repeated key, or the mismatch error."""
    if seen.get("hash") != digest:
        raise IdempotencyMismatch(
            f"Idempotency-Key {key!r} was already used for a batch of {len(seen['ids'])} "
            "tasks with a different request; use a new key for a new request")
    return store.get_many(seen["ids"])


def _acknowledge(store: Store) -> None:
    """With ``REDIS_MIN_REPLICAS`` = n > 0: return only once n replicas hold the batch, else
    :class:`~celery_app.replication.NotReplicated` (503; the batch exists on the master, and a
    retry with the same ``Idempotency-Key`` answers once they do). ``WAIT`` covers the writes
    of its own connection, so it follows a write of its own (``INCR tq:acked``), made after
    the batch: replicas apply writes in order. One round trip."""
    settings = store.settings
    if not settings.redis_min_replicas:
        return
    pipe = store.wait_client.pipeline(transaction=False)
    pipe.incr(keys.acked())
    pipe.execute_command("WAIT", settings.redis_min_replicas, settings.redis_wait_timeout_ms)
    _, count = pipe.execute()
    if int(count) < settings.redis_min_replicas:
        raise NotReplicated(int(count), settings)
