"""Store transitions against a real Redis: atomic, index-consistent, and guarded by delivery."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

from celery_app.store import NewTask
from tests.harness import ROOT, service_env


def _store(env):
    return env.app.extensions["taskqueue"].celery.runtime.store


def _indexes_holding(env, task_id: str) -> set[str]:
    return {key for key in env.redis.scan_iter("tq:idx:*")
            if env.redis.zscore(key, task_id) is not None}


SIX_INDEXES = {"tq:idx:created:all", "tq:idx:priority:all", "tq:idx:created:type:echo",
               "tq:idx:priority:type:echo", "tq:idx:state", "tq:idx:updated:type:echo"}


def _state_score(env, task_id: str) -> tuple[int, int, int]:
    """(state rank, priority, created ms) from the compound score of ``tq:idx:state``."""
    score = int(env.redis.zscore("tq:idx:state", task_id))
    return score // 2**46, score % 2**46 // 10**13, score % 2**46 % 10**13


def test_a_task_sits_in_six_indexes_and_a_transition_moves_its_state_in_them(env):
    store = _store(env)
    envelope, created = store.submit(NewTask(type="echo", payload={}, priority="high"))
    task_id = envelope["id"]
    created_ms = int(env.redis.hget(f"tq:task:{task_id}", "created_ms"))
    assert created
    assert _indexes_holding(env, task_id) == SIX_INDEXES
    assert _state_score(env, task_id) == (0, 2, created_ms)  # pending, high

    delivery = env.redis.hget(f"tq:task:{task_id}", "delivery")
    assert store.claim(task_id, delivery, "w@h").ok
    assert _indexes_holding(env, task_id) == SIX_INDEXES
    assert _state_score(env, task_id) == (3, 2, created_ms)  # running

    assert store.complete(task_id, delivery, {"ok": True})
    assert _state_score(env, task_id) == (4, 2, created_ms)  # completed
    assert env.redis.zscore("tq:idx:updated:type:echo", task_id) // 2**42 == 4
    assert env.redis.zscore("tq:idx:priority:all", task_id) == 2e13 + created_ms

    store.purge(task_id)
    assert _indexes_holding(env, task_id) == set()
    assert not env.redis.exists(f"tq:task:{task_id}")


def test_index_scores_agree_with_the_envelope_stamps(env):
    # A submit spends tens of microseconds building its message between stamping the envelope
    # and running its script, so over a few hundred submits a millisecond boundary is crossed
    # many times: each score must still be the stamp it sits beside.
    store = _store(env)
    ids = [store.submit(NewTask(type="echo", payload={}))[0]["id"] for _ in range(300)]
    store.cancel(ids[0])
    for task_id in ids:
        envelope = store.get(task_id)
        assert env.redis.zscore("tq:idx:updated:type:echo", task_id) % 2**42 == _ms(
            envelope["updated_at"])
        assert env.redis.zscore("tq:idx:created:all", task_id) == _ms(envelope["created_at"])


def _ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000 + 0.5)


def test_claim_skips_a_stale_delivery_and_a_second_claim(env):
    store = _store(env)
    envelope, _ = store.submit(NewTask(type="echo", payload={}))
    task_id = envelope["id"]
    delivery = env.redis.hget(f"tq:task:{task_id}", "delivery")

    stale = store.claim(task_id, "not-the-live-delivery", "w@h")
    assert not stale.ok and stale.reason == "stale delivery"
    assert store.claim(task_id, delivery, "w@h").ok
    again = store.claim(task_id, delivery, "other@h")
    assert not again.ok and again.state == "running"
    assert store.get(task_id)["attempts"] == 1


def test_an_execution_that_lost_its_delivery_cannot_record_an_outcome(env):
    store = _store(env)
    envelope, _ = store.submit(NewTask(type="echo", payload={}))
    task_id = envelope["id"]
    delivery = env.redis.hget(f"tq:task:{task_id}", "delivery")
    store.claim(task_id, delivery, "w@h")
    assert not store.complete(task_id, "another-delivery", {"late": True})
    assert not store.progress(task_id, "another-delivery", 50, None)
    assert store.get(task_id)["state"] == "running"
    assert "result" not in store.get(task_id)


def test_listing_pages_through_an_index_in_order(env):
    store = _store(env)
    created = [store.submit(NewTask(type="echo", payload={"n": n}))[0] for n in range(5)]
    # created_at order; tasks created in the same millisecond order by id, stably
    ids = [t["id"] for t in sorted(created, key=lambda t: (t["created_at"], t["id"]))]
    page1 = env.client.get("/api/v1/tasks?page_size=2&order=asc").get_json()
    page3 = env.client.get("/api/v1/tasks?page_size=2&page=3&order=asc").get_json()
    assert [t["id"] for t in page1["tasks"]] == ids[:2]
    assert [t["id"] for t in page3["tasks"]] == ids[4:]
    assert (page1["total"], page1["pages"], page1["page"]) == (5, 3, 1)
    assert page1["queue_depths"]["low"] == 5 and page1["total_pending"] == 5
    assert env.client.get("/api/v1/tasks?page=4&page_size=2").get_json()["tasks"] == []


def test_idempotency_key_returns_the_first_task_and_queues_nothing_new(env):
    headers = {"Idempotency-Key": "signup-42"}
    first = env.submit(type="echo", payload={"n": 1}, headers=headers)
    again = env.submit(expect=200, type="echo", payload={"n": 1}, headers=headers)
    assert again["id"] == first["id"] and again["payload"] == {"n": 1}
    assert env.redis.llen("low") == 1
    assert 0 < env.redis.ttl("tq:idem:signup-42") <= 24 * 3600


def test_celery_inspect_lists_the_handlers_by_name(live):
    command = [sys.executable, "-m", "celery", "-A", "celery_app", "inspect", "registered",
               "-d", live_worker_name(live), "--timeout", "5"]
    output = subprocess.run(command, cwd=ROOT, env=service_env(live.url), capture_output=True,
                            text=True, timeout=60).stdout
    for name in ("echo", "sleep", "fail"):
        assert f"* {name}" in output, output


def live_worker_name(env) -> str:
    return next(iter(env.redis.zrange("tq:workers", 0, -1)))


def test_a_created_task_is_answered_as_it_is_stored(env):
    # The submit script answers only the fields it stamps; the rest is what the caller sent.
    # Every kind of field must read back the same as the stored envelope.
    from datetime import UTC, timedelta

    from celery_app.batch import submit_batch

    store = _store(env)
    later = datetime.now(UTC) + timedelta(hours=1)
    tasks = [
        NewTask(type="echo", payload={}),
        NewTask(type="echo", payload={"n": 2**60, "x": 0.1, "s": "ü \\ '", "l": [], "d": {}},
                priority="critical", max_retries=0, timeout=7, metadata={"k": [1, None]},
                callback_url="http://example.com/hook"),
        NewTask(type="echo", payload={"a": 1}, scheduled_at=later),
        NewTask(type="echo", payload={}, extra={"file_name": "a.txt", "file_size": 12,
                                                "sha256": "ab" * 32}),
    ]
    for new in tasks:
        envelope, created = store.submit(new)
        assert created
        assert envelope == store.get(envelope["id"])
    envelopes, created = submit_batch(store, tasks[:3])
    assert created
    assert envelopes == [store.get(e["id"]) for e in envelopes]
    assert envelopes[2]["state"] == "scheduled" and envelopes[0]["state"] == "pending"
