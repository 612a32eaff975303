"""Limits per task type, cluster-wide across two worker processes: a rate never exceeded in
any window, a concurrency cap never overlapped, a lost worker's slot freed, and the admin API."""

from __future__ import annotations

from datetime import datetime

from tests.harness import wait_for


def _batch(env, *items: dict) -> list[str]:
    response = env.client.post("/api/v1/tasks/batch", json={"tasks": list(items)})
    assert response.status_code == 201, response.get_json()
    return [task["id"] for task in response.get_json()["tasks"]]


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _started_ms(env, task_id: str) -> int:
    return int(env.redis.hget(f"tq:task:{task_id}", "started_ms"))


def _limit(env, task_type: str, **body) -> None:
    response = env.client.put(f"/admin/limits/{task_type}", json=body)
    assert response.status_code == 200, response.get_json()


def test_a_rate_of_four_per_second_is_never_exceeded_in_any_one_second_window(env):
    env.worker("a", concurrency=2)
    env.worker("b", concurrency=2)
    _limit(env, "echo", rate="4/s")
    ids = _batch(env, *({"type": "echo", "payload": {"i": i}} for i in range(16)))
    done = [env.wait_state(task_id, "completed", timeout=30) for task_id in ids]

    starts = sorted(_started_ms(env, task_id) for task_id in ids)  # Redis's clock, ms
    for first in starts:
        assert sum(first <= s < first + 1000 for s in starts) <= 4, starts
    assert starts[-1] - starts[0] >= 3000  # 16 starts at 4/s need three full windows
    assert {task["attempts"] for task in done} == {1}  # waiting used no attempt
    assert all("throttled_until" not in task for task in done)
    assert int(env.redis.hget("tq:metrics:throttled", "echo")) >= 1
    metrics = env.client.get("/metrics").get_data(as_text=True)
    assert 'taskqueue_tasks_throttled_total{type="echo"}' in metrics


def test_a_throttled_type_waits_pending_while_other_types_run(env):
    env.worker("a", concurrency=2)
    _limit(env, "echo", rate="1/h")
    ids = _batch(env, {"type": "echo"}, {"type": "echo"})

    def one_ran_one_held() -> tuple[str, dict] | None:
        tasks = [env.get(task_id) for task_id in ids]
        ran = [t["id"] for t in tasks if t["state"] == "completed"]
        held = [t for t in tasks if t.get("throttled_until")]
        return (ran[0], held[0]) if ran and held else None

    first, held = wait_for(one_ran_one_held, message="one echo to run, the other to be held")
    second = held["id"]
    assert (held["state"], held["attempts"]) == ("pending", 0)
    assert _ms(held["throttled_until"]) - _started_ms(env, first) == 3_600_000
    (other,) = _batch(env, {"type": "sleep", "payload": {"seconds": 0}})
    env.wait_state(other, "completed")
    assert env.get(second)["state"] == "pending"

    assert env.client.delete("/admin/limits/echo").status_code == 200
    assert env.wait_state(second, "completed", timeout=15)["attempts"] == 1


def test_a_concurrency_of_one_never_overlaps_across_two_workers(env):
    env.worker("a", concurrency=2)
    env.worker("b", concurrency=2)
    _limit(env, "sleep", concurrency=1)
    ids = _batch(env, *({"type": "sleep", "payload": {"seconds": 0.3}} for _ in range(4)))
    done = [env.wait_state(task_id, "completed", timeout=30) for task_id in ids]

    runs = sorted((_started_ms(env, t["id"]), _ms(t["completed_at"])) for t in done)
    for (_, end), (start, _) in zip(runs, runs[1:], strict=False):
        assert start >= end, runs
    assert {task["attempts"] for task in done} == {1}


def test_a_killed_worker_frees_its_concurrency_slot_within_three_heartbeats(env):
    # The survivor starts first, so it holds the maintenance lock (promoter, reaper) throughout.
    env.worker("survivor", queues="high", concurrency=1, worker_heartbeat_seconds=0.5)
    doomed = env.worker("doomed", queues="low", concurrency=1, worker_heartbeat_seconds=0.5)
    _limit(env, "sleep", concurrency=1)
    (holder,) = _batch(env, {"type": "sleep", "payload": {"seconds": 60}, "max_retries": 0,
                             "priority": "low"})
    env.wait_state(holder, "running")
    (waiter,) = _batch(env, {"type": "sleep", "payload": {"seconds": 0}, "priority": "high"})
    wait_for(lambda: env.get(waiter).get("throttled_until"), message="the waiter to be held")

    doomed.kill()
    seconds, micros = env.redis.time()
    killed_ms = seconds * 1000 + micros // 1000
    env.wait_state(waiter, "completed", timeout=15)
    # the lease (3 heartbeats: 1.5 s) + one concurrency re-check (0.5 s) + promotion and claim
    assert _started_ms(env, waiter) - killed_ms < 1500 + 500 + 1000
    assert env.wait_state(holder, "dead_letter")["attempts"] == 1


def test_limits_are_set_read_and_removed_through_the_admin_api_and_audited(env):
    assert env.client.get("/admin/limits").get_json() == {"limits": {}}
    assert env.client.put("/admin/limits/echo", json={"rate": "10/m"}).get_json() == {
        "type": "echo", "rate": "10/m", "concurrency": None}
    env.client.put("/admin/limits/sleep", json={"concurrency": 2, "rate": "5/h"})
    assert env.client.get("/admin/limits").get_json() == {"limits": {
        "echo": {"rate": "10/m", "concurrency": None},
        "sleep": {"rate": "5/h", "concurrency": 2}}}
    for body in ({"rate": "10/d"}, {"rate": "0/s"}, {"concurrency": 0},
                 {"concurrency": 1.5}, {"concurrency": True}, {"rate": 10}, {"burst": 1}):
        response = env.client.put("/admin/limits/echo", json=body)
        assert response.status_code == 400, (body, response.get_json())
    assert env.client.put("/admin/limits/nope", json={"rate": "1/s"}).status_code == 404
    assert env.client.delete("/admin/limits/nope").status_code == 404
    assert env.client.delete("/admin/limits/echo").status_code == 200
    assert list(env.client.get("/admin/limits").get_json()["limits"]) == ["sleep"]
    assert env.client.put("/admin/limits/sleep", json={}).status_code == 200  # replaced by none
    assert env.client.get("/admin/limits").get_json() == {"limits": {}}

    actions = [(e["action"], e["target"]) for e in
               env.client.get("/admin/audit").get_json()["entries"]]
    assert actions == [("limits.set", "echo"), ("limits.set", "sleep"),
                       ("limits.delete", "echo"), ("limits.set", "sleep")]
