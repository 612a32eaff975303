"""Listing and statistics: pages of tasks, counts, and what waits in each Celery queue.

Reads only; the indexes are written by the transition scripts (``lua/lib.lua`` holds the
index rules, ``lua/list.lua`` the paging). A page over any one filter, or state/status with
priority, is O(log n + page size) whatever the number of stored tasks, other combinations are
bounded by the page's distance from the nearer end or by the smaller side (:meth:`Listing.page`);
statistics are a fixed number of commands in one round trip.

Keys (:mod:`celery_app.keys`): the ``tq:idx:*`` sorted sets and ``tq:types``, ``tq:stats``
(processing-time sum), the envelopes ``tq:task:<id>``, and kombu's queue lists (counted,
never written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from . import keys, model
from .metrics import fold_events
from .store import Store


@dataclass(frozen=True)
class Filters:
    """What a listing is restricted to; every field given must hold (``None``: any)."""

    state: str | None = None
    status: str | None = None
    type: str | None = None
    priority: str | None = None

    def ranks(self) -> list[int]:
        """The states' positions in the compound indexes; ``[]`` for every state. A state
        outside the given status matches nothing (``[-1]``: no such rank)."""
        states = [s for s in model.STATES
                  if (self.state is None or s == self.state)
                  and (self.status is None or model.STATUS_OF_STATE[s] == self.status)]
        if self.state is None and self.status is None:
            return []
        return sorted(keys.STATE_RANK[s] for s in states) or [-1]


class Listing:
    """Pages, counts and queue depths over one store's tasks."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis: redis.Redis = store.redis

    def page(
        self,
        *,
        filters: Filters,
        sort: str,
        descending: bool,
        page: int,
        page_size: int,
        plan: str = "",
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of envelopes matching every filter, and how many match.

        ``sort`` is one of :data:`keys.SORTS`; ``page`` counts from 1. Two round trips (the
        ``list`` script, then the envelopes). A single filter, state or status with priority,
        and type or state/status with the updated sort are index ranges: O(log n + page)
        whatever the number of stored tasks (several ranges are merged by a binary search on
        the sort value). Type with a state/status (created or priority sort) and priority with
        the updated sort count with ``ZCOUNT`` and walk one filter's ranges from the nearer
        end, checking the other: O(position / selectivity), a page or two near either end;
        where that would read more than the matches, and for type with state/status and
        priority, the smallest exact side is read whole — never more than the smaller filter.
        ``plan`` (``walk`` or ``read``) forces one of those two ways, for tests; ``""``
        chooses by cost.
        """
        answer = self.store.scripts.run(
            "list", [keys.state_index()], sort, "1" if descending else "0",
            (page - 1) * page_size, page_size, " ".join(map(str, filters.ranks())),
            "" if filters.priority is None else model.PRIORITIES[filters.priority],
            filters.type or "", plan,
        )
        total, ids = int(answer[0]), answer[1:]
        return (self.store.get_many(ids) if ids else []), total

    def count(self, state: str) -> int:
        """Tasks in ``state`` (one ``ZCOUNT``)."""
        base = keys.STATE_RANK[state] * keys.STATE_UNIT
        return int(self.redis.zcount(keys.state_index(), base, base + keys.STATE_UNIT - 1))

    def statistics(self) -> dict[str, Any]:
        """Counts by state and status over all stored tasks, success rate and mean processing
        time — a fixed number of Redis commands in one round trip, whatever the task count
        (after folding the events since the last fold into the processing-time sum)."""
        fold_events(self.store.scripts)
        pipe = self.redis.pipeline(transaction=False)
        for state in model.STATES:
            base = keys.STATE_RANK[state] * keys.STATE_UNIT
            pipe.zcount(keys.state_index(), base, base + keys.STATE_UNIT - 1)
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
