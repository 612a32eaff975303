"""Listing and statistics: pages of tasks, counts, and what waits in each Celery queue.

Reads only; the indexes are written by the transition scripts (``lua/lib.lua`` holds the
index rules). A page is O(log n + page size) whatever the number of stored tasks; statistics
are a fixed number of commands in one round trip.

Keys (:mod:`celery_app.keys`): the ``tq:idx:<sort>:<filter>`` sorted sets, ``tq:stats``
(processing-time sums), the envelopes ``tq:task:<id>``, and kombu's queue lists (counted,
never written).
"""

from __future__ import annotations

from typing import Any

import redis

from . import keys, model
from .store import Store


class Listing:
    """Pages, counts and queue depths over one store's tasks."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis: redis.Redis = store.redis

    def page(
        self, *, filter_: str, sort: str, descending: bool, page: int, page_size: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of envelopes from an index, and the index's size: O(log n + page).

        ``filter_`` is ``all`` or ``<dimension>:<value>``; ``sort`` one of
        :data:`keys.SORTS`; ``page`` counts from 1.
        """
        key = keys.index(sort, filter_)
        start = (page - 1) * page_size
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(key)
        pipe.zrange(key, start, start + page_size - 1, desc=descending)
        total, ids = pipe.execute()
        return (self.store.get_many(ids) if ids else []), total

    def statistics(self) -> dict[str, Any]:
        """Counts by state and status over all stored tasks, success rate and mean processing
        time — a fixed number of Redis commands in one round trip, whatever the task count."""
        pipe = self.redis.pipeline(transaction=False)
        for state in model.STATES:
            pipe.zcard(keys.index("created", f"state:{state}"))
        pipe.hget(keys.stats(), "duration_ms_sum")
        *counts, duration_sum = pipe.execute()
        by_state = dict(zip(model.STATES, counts, strict=True))
        by_status = dict.fromkeys(model.STATUSES, 0)
        for state, count in by_state.items():
            by_status[model.STATUS_OF_STATE[state]] += count
        succeeded = by_state[model.COMPLETED]
        finished = succeeded + by_state[model.FAILED] + by_state[model.DEAD_LETTER]
        completed_runs = by_state[model.COMPLETED]  # each completed task has its duration
        return {
            "total": sum(counts),
            **by_status,
            "by_state": by_state,
            "success_rate": round(succeeded / finished, 4) if finished else 0.0,
            "avg_processing_time_ms": (
                round(int(duration_sum or 0) / completed_runs, 1) if completed_runs else 0.0
            ),
        }

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting in each Celery queue (all of kombu's lists for it)."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in model.QUEUES:
            for name in keys.queue_lists(queue):
                pipe.llen(name)
        lengths = pipe.execute()
        per = len(keys.KOMBU_PRIORITY_SUFFIXES)
        return {q: sum(lengths[i * per : (i + 1) * per]) for i, q in enumerate(model.QUEUES)}
