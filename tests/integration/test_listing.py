"""Listing with filters that combine: every page equals what a full scan of the envelopes says.

The tasks are put in every state through the store's own transitions (no worker needed), with
several types and priorities and some tasks sharing a millisecond, then each combination of
filters, sort and order is paged through the API and compared with the envelopes sorted in
Python.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from celery_app import model
from celery_app.store import NewTask

TYPES = ("echo", "sleep", "fail")
SORT_FIELDS = {"created_at": ("created_ms",), "priority": ("priority_n", "created_ms"),
               "updated_at": ("updated_ms",)}


def _ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000 + 0.5)


@pytest.fixture(scope="module")
def populated(redis_server, tmp_path_factory):
    from tests.service import Env

    env = Env(redis_server, 63, tmp_path_factory.mktemp("listing"))
    store = env.app.extensions["taskqueue"].celery.runtime.store
    later = datetime.now(UTC) + timedelta(hours=1)
    for n in range(72):
        store.submit(NewTask(type=TYPES[n % 3], payload={}, priority=model.QUEUES[n % 4],
                             scheduled_at=later if n % 9 == 0 else None))
    ids = [t["id"] for t in env.client.get("/api/v1/tasks?page_size=100&state=pending")
           .get_json()["tasks"]]
    for n, task_id in enumerate(ids):
        delivery = env.redis.hget(f"tq:task:{task_id}", "delivery")
        if n % 6 == 0:
            store.cancel(task_id)
        elif n % 6 in (1, 2, 3):
            claim = store.claim(task_id, delivery, "w@h")
            envelope = {**claim.envelope, "payload": {}}
            if n % 6 == 2:
                store.complete(task_id, delivery, {"n": n})
            elif n % 6 == 3:
                store.fail(envelope, delivery, "boom", retryable=n % 4 == 0)
    yield env
    env.close(flush=True)


def _expected(env, filters: dict[str, str], sort_by: str, order: str) -> list[str]:
    envelopes = [env.get(i) for i in env.redis.zrange("tq:idx:created:all", 0, -1)]
    rows = []
    for e in envelopes:
        if any(str(e[name] if name != "priority" else e["priority"]) != value
               for name, value in filters.items()):
            continue
        row = {"created_ms": _ms(e["created_at"]), "updated_ms": _ms(e["updated_at"]),
               "priority_n": model.PRIORITIES[e["priority"]]}
        rows.append((tuple(row[f] for f in SORT_FIELDS[sort_by]) + (e["id"],), e["id"]))
    rows.sort(reverse=order == "desc")
    return [task_id for _, task_id in rows]


FILTER_CHOICES = [
    {},
    {"state": "running"},
    {"status": "pending"},
    {"status": "failed"},
    {"type": "sleep"},
    {"priority": "high"},
    {"state": "completed", "type": "echo"},
    {"status": "pending", "type": "fail"},
    {"status": "pending", "priority": "low"},
    {"type": "echo", "priority": "critical"},
    {"state": "cancelled", "type": "sleep", "priority": "normal"},
    {"status": "failed", "state": "dead_letter", "type": "echo"},
    {"status": "completed", "state": "running"},
]


@pytest.mark.parametrize("filters", FILTER_CHOICES, ids=lambda f: ",".join(f) or "none")
def test_every_combination_of_filters_pages_like_a_full_scan(populated, filters):
    for sort_by, order in itertools.product(SORT_FIELDS, ("asc", "desc")):
        expected = _expected(populated, filters, sort_by, order)
        got, page = [], 1
        while True:
            query = {**filters, "sort_by": sort_by, "order": order, "page": page,
                     "page_size": 7}
            body = populated.client.get("/api/v1/tasks", query_string=query).get_json()
            assert body["total"] == len(expected), (filters, sort_by, order)
            got += [t["id"] for t in body["tasks"]]
            if page >= body["pages"]:
                break
            page += 1
        assert got == expected, (filters, sort_by, order)


UNINDEXED = [
    ({"state": "completed", "type": "echo"}, ("created_at", "priority")),
    ({"status": "pending", "type": "fail"}, ("created_at", "priority")),
    ({"status": "failed", "type": "sleep"}, ("created_at", "priority")),
    ({"priority": "high"}, ("updated_at",)),
    ({"status": "pending", "priority": "low"}, ("updated_at",)),
    ({"type": "echo", "priority": "critical"}, ("updated_at",)),
    ({"state": "cancelled", "type": "sleep", "priority": "normal"}, ("created_at", "updated_at")),
]


@pytest.mark.parametrize("plan", ["walk", "read"])
@pytest.mark.parametrize(("filters", "sorts"), UNINDEXED,
                         ids=lambda f: ",".join(f) if isinstance(f, dict) else "")
def test_both_plans_for_unindexed_combinations_page_like_a_full_scan(populated, filters, sorts,
                                                                     plan):
    from celery_app.listing import Filters

    listing = populated.app.extensions["taskqueue"].celery.runtime.listing
    for sort_by, order in itertools.product(sorts, ("asc", "desc")):
        expected = _expected(populated, filters, sort_by, order)
        for page_size in (1, 5):
            got = []
            for page in range(1, len(expected) // page_size + 2):
                tasks, total = listing.page(
                    filters=Filters(**filters), sort=sort_by.removesuffix("_at"),
                    descending=order == "desc", page=page, page_size=page_size, plan=plan)
                assert total == len(expected), (filters, sort_by, order, plan)
                got += [t["id"] for t in tasks]
            assert got == expected, (filters, sort_by, order, page_size, plan)


def test_statistics_count_every_state_from_the_state_index(populated):
    stats = populated.client.get("/api/v1/tasks/statistics").get_json()
    everything = populated.client.get("/api/v1/tasks?page_size=100").get_json()["tasks"]
    for state in model.STATES:
        assert stats["by_state"][state] == sum(t["state"] == state for t in everything)
    assert stats["total"] == len(everything) == 72
