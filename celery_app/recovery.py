"""Lost messages: ``pending`` tasks whose Celery message is in no queue and held by no live
worker are queued again.

kombu's Redis consume is two steps — ``BRPOP`` the message, then write it to ``unacked`` — so
a worker that dies between them, or whose write Redis refuses (``OOM``, ``READONLY``,
``MISCONF``…), leaves its task ``pending`` with no message anywhere. A worker that dies with a
message in ``unacked`` (its claim or its acknowledgement refused) leaves it there until the
visibility timeout, which is longer than the longest task. Either way the task would wait
(almost) forever. The maintenance lock holder finds such tasks and re-publishes them, at a
bounded cost per sweep:

- While no task has been ``pending`` longer than ``LOST_MESSAGE_GRACE_SECONDS`` (the normal
  case) a sweep is one ``ZRANGEBYSCORE … LIMIT 0 1`` and nothing is scanned.
- Otherwise a *round* collects the delivery token of every message in the queue lists, head to
  tail (``LRANGE``; kombu pushes at the head and pops at the tail, so a message that stays is
  never skipped), then of every entry of kombu's ``unacked`` hash (``HSCAN``) — at most
  :data:`SCAN_BATCH` messages per sweep, so a round over N messages takes N / SCAN_BATCH sweeps.
- When a round ends, a task pending since before it began (less the grace) is *suspect* when
  its delivery is in no queue list and it is not in the ``active_ids`` of a live worker's
  heartbeat record (``unacked`` alone does not count: a dead worker's entries stay there). A
  suspect found again, with the same delivery, by a round that starts two heartbeat intervals
  later — long enough for a worker that had just taken it to list it — is re-published by
  ``lua/republish.lua`` (only if still ``pending`` with that delivery) under a new delivery.
  Whatever copy of the old message still exists is then stale and skipped at claim, so a
  re-publish never makes a task run twice. At most :data:`REPUBLISH_BATCH` per round.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import redis

from . import keys, model
from .messages import DELIVERY_HEADER
from .store import Store

logger = logging.getLogger(__name__)

#: Messages read per sweep (each ~1–1.5 KB).
SCAN_BATCH = 500
#: Pending tasks examined (and at most re-published) per round.
REPUBLISH_BATCH = 500
_LISTS = tuple(name for queue in model.QUEUES for name in keys.queue_lists(queue))


def _delivery_of(raw: str) -> str:
    """The delivery token of a message in a queue list; ``''`` when it has none."""
    try:
        return str(json.loads(raw)["headers"].get(DELIVERY_HEADER) or "")
    except (ValueError, LookupError, TypeError, AttributeError):
        return ""


@dataclass
class _Round:
    """One pass over every queued message, in bounded steps."""

    started_ms: int
    queued: set[str] = field(default_factory=set)
    list_index: int = 0
    offset: int = 0

    def step(self, client: redis.Redis, budget: int) -> bool:
        """Read up to ``budget`` messages; true once the round has seen every list."""
        while budget > 0 and self.list_index < len(_LISTS):
            chunk = client.lrange(_LISTS[self.list_index], self.offset, self.offset + budget - 1)
            self.queued.update(_delivery_of(raw) for raw in chunk)
            self.offset += len(chunk)
            if len(chunk) < budget:
                self.list_index, self.offset = self.list_index + 1, 0
            budget -= len(chunk)
        return self.list_index >= len(_LISTS)


def held_by_workers(client: redis.Redis) -> set[str]:
    """Task ids that live workers listed as reserved or running in their last heartbeat."""
    names = client.zrange(keys.workers(), 0, -1)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hget(keys.worker(name), "active_ids")
    return {task_id for active in pipe.execute() if active for task_id in json.loads(active)}


class LostMessages:
    """Finds ``pending`` tasks whose message was lost and queues them again (see module)."""

    def __init__(self, grace_seconds: float, heartbeat_seconds: float) -> None:
        self.grace_ms = int(grace_seconds * 1000)
        self.confirm_ms = int(2 * heartbeat_seconds * 1000)
        self._round: _Round | None = None
        self._suspects: dict[str, tuple[str, int]] = {}  # id → (delivery, flagged at ms)

    def sweep(self, store: Store) -> list[str]:
        """One bounded step of the current round; the ids re-published when it ends."""
        if self._round is None:
            started = store.now_ms()
            cutoff = started - self.grace_ms
            if not store.last_updated_before((model.PENDING,), cutoff, 1):
                self._suspects.clear()
                return []
            self._round = _Round(started)
        if not self._round.step(store.redis, SCAN_BATCH):
            return []
        finished, self._round = self._round, None
        return self._conclude(store, finished)

    def _conclude(self, store: Store, finished: _Round) -> list[str]:
        """Flag tasks whose message is nowhere; re-publish those flagged long enough ago."""
        ids = store.last_updated_before(
            (model.PENDING,), finished.started_ms - self.grace_ms, REPUBLISH_BATCH
        )
        pipe = store.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.hget(keys.task(task_id), "delivery")
        deliveries = pipe.execute()
        held = held_by_workers(store.redis)
        now = store.now_ms()
        suspects: dict[str, tuple[str, int]] = {}
        republished = []
        for task_id, delivery in zip(ids, deliveries, strict=True):
            delivery = delivery or ""
            if delivery in finished.queued or task_id in held:
                continue
            seen_delivery, flagged = self._suspects.get(task_id, (delivery, now))
            if seen_delivery == delivery and finished.started_ms - flagged >= self.confirm_ms:
                if store.republish(task_id, delivery):
                    logger.warning("task %s: its message was lost; queued again", task_id)
                    republished.append(task_id)
                continue
            suspects[task_id] = (delivery, flagged if seen_delivery == delivery else now)
        self._suspects = suspects
        return republished
