"""Honest pause: worker pause and queue pause answer 200 only once applied, hold over many
cycles, survive restarts, and keep strict priority order when lifted."""

from __future__ import annotations

import json
import os
import signal

import pytest

from app import create_app
from tests.harness import Worker, wait_for

FAST = {"worker_heartbeat_seconds": 0.5}


def _beat_ms(env, worker: Worker) -> int:
    return int(env.redis.hget(f"tq:worker:{worker.hostname}", "beat_ms") or 0)


def _two_heartbeats(env, *workers: Worker) -> None:
    """Wait until each worker wrote two more heartbeats: a full interval of its event loop
    has passed (it would have taken any message it was reading)."""
    for worker in workers:
        seen = {_beat_ms(env, worker)}

        def advanced(w: Worker = worker, seen: set = seen) -> bool:
            seen.add(_beat_ms(env, w))
            return len(seen) > 2

        wait_for(advanced, message=f"two heartbeats of {worker.hostname}")


def _states(env, ids: list[str]) -> list[str]:
    return [env.get(i)["state"] for i in ids]


def _events(env, kind: str) -> list[dict]:
    return [json.loads(f["data"]) for _, f in env.redis.xrange("tq:events") if f["type"] == kind]


def _post(env, path: str, expect: int = 200) -> dict:
    response = env.client.post(path)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def test_twenty_pause_resume_cycles_each_hold_new_tasks_and_resume_in_priority_order(env):
    worker = env.worker(concurrency=1, **FAST)
    for cycle in range(20):
        busy = None
        if cycle % 2:  # every other cycle pauses a worker that is running a task
            busy = env.submit(
                type="sleep", payload={"seconds": 0.4, "steps": 1}, priority="normal"
            )["id"]
            env.wait_state(busy, "running")
        paused = _post(env, f"/admin/workers/{worker.hostname}/pause")
        assert paused["state"] == "paused", cycle
        low = env.submit(type="echo", priority="low")["id"]
        critical = env.submit(type="echo", priority="critical")["id"]
        _two_heartbeats(env, worker)
        if busy:
            assert env.wait_state(busy, "completed")  # running tasks finish
        assert _states(env, [low, critical]) == ["pending", "pending"], cycle
        resumed = _post(env, f"/admin/workers/{worker.hostname}/resume")
        assert resumed["state"] in ("idle", "busy"), cycle
        assert env.started_order([low, critical]) == [critical, low], cycle
    assert len(_events(env, "worker.paused")) == 20
    assert len(_events(env, "worker.resumed")) == 20


def test_pausing_one_of_two_workers_leaves_the_other_running_and_both_can_cycle(env):
    first = env.worker("a", concurrency=1, **FAST)
    second = env.worker("b", queues="critical,high", concurrency=1, **FAST)
    for _ in range(3):
        assert _post(env, f"/admin/workers/{first.hostname}/pause")["state"] == "paused"
        high = env.submit(type="echo", priority="high")["id"]
        low = env.submit(type="echo", priority="low")["id"]
        assert env.wait_state(high, "completed")["worker_id"] == second.hostname
        _two_heartbeats(env, first)
        assert env.get(low)["state"] == "pending"  # only the paused worker reads low

        assert _post(env, f"/admin/workers/{second.hostname}/pause")["state"] == "paused"
        held = env.submit(type="echo", priority="critical")["id"]
        _two_heartbeats(env, first, second)
        assert _states(env, [low, held]) == ["pending", "pending"]
        listed = {
            w["id"]: w["state"] for w in env.client.get("/admin/workers").get_json()["workers"]
        }
        assert listed == {first.hostname: "paused", second.hostname: "paused"}

        _post(env, f"/admin/workers/{first.hostname}/resume")
        assert env.started_order([held, low]) == [held, low]
        assert env.get(held)["worker_id"] == first.hostname
        _post(env, f"/admin/workers/{second.hostname}/resume")


def test_a_worker_that_cannot_confirm_is_pausing_until_it_does(env, tmp_path):
    env.app = create_app(env.settings.with_overrides(pause_confirm_seconds=1.0))
    env.client = env.app.test_client()
    worker = env.worker(concurrency=1, **FAST)
    os.kill(worker.process.pid, signal.SIGSTOP)  # the main process: no control, no heartbeat
    try:
        answer = _post(env, f"/admin/workers/{worker.hostname}/pause", expect=202)
        assert answer["state"] == "pausing"
        queue = _post(env, "/admin/queues/high/pause", expect=202)
        assert queue == {
            "name": "high",
            "paused": True,
            "depth": 0,
            "pending_workers": [worker.hostname],
        }
        task = env.submit(type="echo", priority="normal")["id"]
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    wait_for(
        lambda: (
            {
                w["id"]: w["state"] for w in env.client.get("/admin/workers").get_json()["workers"]
            }.get(worker.hostname)
            == "paused"
        ),
        message="paused once it could confirm",
    )
    _two_heartbeats(env, worker)
    assert env.get(task)["state"] == "pending"
    resumed = _post(env, f"/admin/workers/{worker.hostname}/resume")
    assert resumed["state"] in ("idle", "busy")
    assert env.wait_state(task, "completed")


def test_queue_pause_holds_that_queue_on_every_worker_and_others_keep_flowing(env):
    full = env.worker("full", concurrency=1, **FAST)
    subset = env.worker("subset", queues="normal,low", concurrency=1, **FAST)
    elsewhere = env.worker("elsewhere", queues="critical", concurrency=1, **FAST)
    body = _post(env, "/admin/queues/low/pause")
    assert body == {"name": "low", "paused": True, "depth": 0}
    assert _post(env, "/admin/queues/low/pause") == body  # idempotent
    assert [e["queue"] for e in _events(env, "queue.paused")] == ["low"]
    listed = env.client.get("/admin/queues").get_json()["queues"]
    assert {q: v["paused"] for q, v in listed.items()} == {
        "critical": False,
        "high": False,
        "normal": False,
        "low": True,
    }
    metrics = env.client.get("/metrics").get_data(as_text=True)
    assert 'taskqueue_queue_paused{priority="low"} 1.0' in metrics
    assert 'taskqueue_queue_paused{priority="normal"} 0.0' in metrics

    lows = [env.submit(type="echo", priority="low")["id"] for _ in range(3)]
    normal = env.submit(type="echo", priority="normal")["id"]
    critical = env.submit(type="echo", priority="critical")["id"]
    assert env.wait_state(normal, "completed")["worker_id"] in (full.hostname, subset.hostname)
    assert env.wait_state(critical, "completed")["worker_id"] in (full.hostname, elsewhere.hostname)
    _two_heartbeats(env, full, subset)
    assert _states(env, lows) == ["pending"] * 3

    # A restarted worker and a new one honour the persisted pause from their first message.
    subset.stop()
    again = Worker(
        env.url,
        subset.hostname.split("@")[0],
        queues="normal,low",
        concurrency=1,
        log_dir=env.tmp_path,
        **FAST,
    )
    env.workers.append(again)
    again.start()
    newcomer = env.worker("new", queues="low", concurrency=1, **FAST)
    _two_heartbeats(env, again, newcomer)
    assert _states(env, lows) == ["pending"] * 3
    assert env.client.get("/admin/queues").get_json()["queues"]["low"]["depth"] == 3

    resumed = _post(env, "/admin/queues/low/resume")
    assert resumed == {"name": "low", "paused": False, "depth": resumed["depth"]}
    for task_id in lows:
        env.wait_state(task_id, "completed")
    assert [e["queue"] for e in _events(env, "queue.resumed")] == ["low"]


def test_a_resumed_queue_keeps_its_place_in_the_priority_order(env):
    worker = env.worker(concurrency=1, **FAST)
    _post(env, "/admin/queues/critical/pause")
    blocker = env.submit(type="sleep", payload={"seconds": 1.0, "steps": 1}, priority="high")["id"]
    env.wait_state(blocker, "running")
    ids = {p: env.submit(type="echo", priority=p)["id"] for p in ("low", "normal", "high")}
    ids["critical"] = env.submit(type="echo", priority="critical")["id"]
    _post(env, "/admin/queues/critical/resume")  # while the blocker still runs
    assert env.get(blocker)["state"] == "running"
    priority_of = {task_id: p for p, task_id in ids.items()}
    order = [priority_of[i] for i in env.started_order(list(ids.values()))]
    assert order == ["critical", "high", "normal", "low"]
    assert env.get(ids["critical"])["worker_id"] == worker.hostname


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_unknown_queue_is_404(env, action):
    response = env.client.post(f"/admin/queues/urgent/{action}")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Not Found", "message": "queue not found"}


def test_a_worker_carries_pauses_and_limits_of_the_earlier_key_layout(env):
    worker = env.worker("upgraded", concurrency=1, start=False, **FAST)
    env.redis.hset("tq:paused", worker.hostname, "2026-11-01T00:00:00.000Z")
    env.redis.hset("tq:queues:paused", "low", "2026-11-01T00:00:00.000Z")
    limit = {"concurrency": 2, "rate": "5/s", "rate_n": 5, "rate_ms": 1000}
    env.redis.hset("tq:limits", "email", json.dumps(limit))
    env.redis.hset("tq:gates", "limit:echo", json.dumps({"concurrency": 1}))  # current: kept
    env.redis.hset("tq:limits", "echo", json.dumps({"concurrency": 9}))
    worker.start()

    assert not env.redis.exists("tq:paused", "tq:queues:paused", "tq:limits")
    assert env.client.get("/admin/queues").get_json()["queues"]["low"]["paused"] is True
    assert env.client.get("/admin/limits").get_json()["limits"] == {
        "echo": {"rate": None, "concurrency": 1},
        "email": {"rate": "5/s", "concurrency": 2},
    }
    record = wait_for(
        lambda: next(
            (w for w in env.client.get("/admin/workers").get_json()["workers"]
             if w["id"] == worker.hostname and w["state"] == "paused"),
            None,
        ),
        message="the upgraded worker to apply its carried pause",
    )
    assert record["state"] == "paused"
    task = env.submit(type="echo", priority="high")["id"]
    _two_heartbeats(env, worker)
    assert env.get(task)["state"] == "pending"  # the carried worker pause holds it
