"""Priorities are queues, consumed strictly critical → high → normal → low."""

from __future__ import annotations

from tests.harness import wait_for


def _started_order(env, ids: list[str]) -> list[str]:
    return env.started_order(ids)


def test_waiting_tasks_start_in_strict_priority_order(env):
    ids: dict[str, str] = {}
    for round_ in range(2):
        for priority in ("low", "normal", "high", "critical"):
            task = env.submit(type="echo", payload={}, priority=priority)
            ids[f"{priority}{round_}"] = task["id"]
    env.worker(concurrency=1)
    order = _started_order(env, list(ids.values()))
    names = {v: k[:-1] for k, v in ids.items()}
    assert [names[i] for i in order] == [
        "critical", "critical", "high", "high", "normal", "normal", "low", "low"]


def test_critical_task_overtakes_everything_but_the_running_low_task(env):
    env.worker(concurrency=1)
    first = env.submit(type="sleep", payload={"seconds": 1.0}, priority=0)
    env.wait_state(first["id"], "running")
    lows = [env.submit(type="sleep", payload={"seconds": 0.05}, priority=0)["id"]
            for _ in range(8)]
    critical = env.submit(type="echo", payload={}, priority=3)["id"]
    order = _started_order(env, [first["id"], *lows, critical])
    assert order[0] == first["id"]
    assert order[1] == critical, "critical waited behind a prefetched low task"


def test_worker_on_a_queue_subset_never_runs_other_priorities(env):
    worker = env.worker(queues="critical,high", concurrency=1)
    low = env.submit(type="echo", payload={}, priority="low")
    normal = env.submit(type="echo", payload={}, priority="normal")
    high = env.submit(type="echo", payload={}, priority="high")
    env.wait_state(high["id"], "completed")
    record = env.redis.hgetall(f"tq:worker:{worker.hostname}")
    assert record["queues"] == '["critical", "high"]'
    assert env.get(low["id"])["state"] == "pending"
    assert env.get(normal["id"])["state"] == "pending"
    depths = env.client.get("/api/v1/tasks").get_json()["queue_depths"]
    assert depths == {"critical": 0, "high": 0, "normal": 1, "low": 1}

    env.worker(queues="normal,low", concurrency=1)
    wait_for(lambda: env.get(low["id"])["state"] == "completed", message="low to run")
    assert env.get(normal["id"])["worker_id"] != worker.hostname
