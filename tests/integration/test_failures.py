"""Every way a task can go wrong ends in a known, visible, recoverable state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from app import create_app
from tests.harness import wait_for

FAST_RETRIES = {"retry_backoff_seconds": 0.4, "retry_backoff_max_seconds": 5}


def _events(env, task_id: str) -> list[tuple[int, str, dict]]:
    return [(int(entry_id.split("-")[0]), fields["type"], json.loads(fields["data"]))
            for entry_id, fields in env.redis.xrange("tq:events")
            if json.loads(fields["data"]).get("task_id") == task_id]


def test_failures_retry_with_exponential_backoff_then_dead_letter(env):
    env.worker(**FAST_RETRIES)
    task = env.submit(type="fail", payload={"message": "flaky"}, max_retries=2)
    done = env.wait_state(task["id"], "dead_letter", timeout=20)
    assert done["attempts"] == 3 and done["error"] == "flaky"

    events = _events(env, task["id"])
    kinds = [kind for _, kind, _ in events]
    assert kinds.count("task.started") == 3 and kinds.count("task.failed") == 3
    assert kinds.count("task.retrying") == 2 and kinds[-1] == "task.dead_letter"
    failed_at = [ms for ms, kind, _ in events if kind == "task.failed"]
    started_at = [ms for ms, kind, _ in events if kind == "task.started"]
    for n, (failed, restarted) in enumerate(zip(failed_at, started_at[1:], strict=False), 1):
        expected = 400 * 2 ** (n - 1)
        assert expected * 0.9 <= restarted - failed <= expected * 1.1 + 1500, (n, events)
    retrying = [data for _, kind, data in events if kind == "task.retrying"]
    assert all("next_retry_at" in data for data in retrying)


def test_non_retryable_error_goes_straight_to_the_dlq(env):
    env.worker()
    task = env.submit(type="fail", payload={"message": "bad input", "permanent": True},
                      max_retries=5)
    done = env.wait_state(task["id"], "dead_letter")
    assert done["attempts"] == 1
    entry = env.client.get("/admin/dlq").get_json()["entries"][0]
    assert entry["reason"] == "non-retryable error" and entry["task"]["id"] == task["id"]


def test_an_execution_over_its_timeout_is_a_failed_attempt_that_says_so(env):
    env.worker()
    task = env.submit(type="sleep", payload={"seconds": 10}, timeout=1, max_retries=0)
    done = env.wait_state(task["id"], "dead_letter", timeout=15)
    assert done["error"] == "timed out after 1s"


def test_a_handler_that_ignores_its_soft_limit_is_killed_at_the_hard_limit(env):
    env.worker(concurrency=1)
    client = create_app(env.settings.with_overrides(hard_timeout_grace_seconds=1)).test_client()
    body = {"type": "sleep", "payload": {"seconds": 30, "stubborn": True}, "timeout": 1,
            "max_retries": 0}
    task = client.post("/api/v1/tasks", json=body).get_json()
    done = env.wait_state(task["id"], "dead_letter", timeout=15)
    assert done["error"].startswith("timed out after 1s (killed")
    assert done["attempts"] == 1
    follow_up = env.submit(type="echo", payload={"after": "kill"})
    assert env.wait_state(follow_up["id"], "completed")["result"] == {"after": "kill"}


def test_scheduled_task_runs_after_its_time_and_not_before(env):
    env.worker()
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    task = env.submit(type="echo", scheduled_at=due.isoformat())
    assert task["state"] == "scheduled" and task["status"] == "pending"
    assert env.redis.llen("low") == 0 and env.redis.zscore("tq:delayed", task["id"])
    done = env.wait_state(task["id"], "completed")
    started = datetime.fromisoformat(done["started_at"].replace("Z", "+00:00"))
    due_ms = due.replace(microsecond=due.microsecond // 1000 * 1000)  # timestamps keep ms
    assert due_ms <= started <= due + timedelta(seconds=2)


def test_scheduled_task_survives_every_worker_being_down_and_runs_once(env):
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    task = env.submit(type="echo", scheduled_at=due.isoformat())
    wait_for(lambda: datetime.now(UTC) > due + timedelta(seconds=0.5), message="due time")
    assert env.get(task["id"])["state"] == "scheduled"

    env.worker()
    done = env.wait_state(task["id"], "completed", timeout=5)
    assert done["attempts"] == 1
    env.worker()  # a second worker (and promoter candidate) changes nothing
    wait_for(env.queue_empty, message="queues drained")
    assert env.get(task["id"])["attempts"] == 1
    assert [k for _, k, _ in _events(env, task["id"])].count("task.started") == 1


def test_cancelling_scheduled_and_retrying_tasks_removes_them_from_the_delayed_set(env):
    env.worker(retry_backoff_seconds=30)
    scheduled = env.submit(type="echo",
                           scheduled_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    retrying = env.submit(type="fail", max_retries=1)
    env.wait_state(retrying["id"], "retrying")
    assert env.get(retrying["id"])["next_retry_at"]
    for task in (scheduled, retrying):
        response = env.client.delete(f"/api/v1/tasks/{task['id']}")
        assert response.status_code == 200 and response.get_json()["state"] == "cancelled"
        assert env.redis.zscore("tq:delayed", task["id"]) is None
        assert not env.redis.hexists("tq:delayed:msg", task["id"])


def test_dlq_lists_retries_one_retries_all_and_clears_with_the_contract_bodies(env):
    worker = env.worker()
    ids = [env.submit(type="fail", payload={"message": f"e{n}"}, max_retries=0)["id"]
           for n in range(3)]
    for task_id in ids:
        env.wait_state(task_id, "dead_letter")

    listing = env.client.get("/admin/dlq").get_json()
    assert listing["size"] == 3
    in_dlq_order = [e["task"]["id"] for e in listing["entries"]]  # oldest dead-letter first
    assert sorted(in_dlq_order) == sorted(ids)
    message_ids = [e["message_id"] for e in listing["entries"]]
    assert message_ids == sorted(message_ids, key=lambda m: tuple(map(int, m.split("-"))))
    assert all(e["reason"] == "max retries exceeded" for e in listing["entries"])
    assert all(e["task"]["state"] == "dead_letter" and e["added_at"] for e in listing["entries"])
    first_page = env.client.get("/admin/dlq?count=2").get_json()["entries"]
    rest = env.client.get(f"/admin/dlq?after={first_page[-1]['message_id']}").get_json()
    assert [e["task"]["id"] for e in first_page + rest["entries"]] == in_dlq_order

    worker.stop()  # re-queued tasks stay pending so their reset state can be seen
    one = env.client.post("/admin/dlq/retry", json={"task_id": ids[0]})
    assert one.status_code == 200
    assert one.get_json() == {"message": "task re-queued", "task_id": ids[0]}
    again = env.get(ids[0])
    assert (again["state"], again["attempts"], again["progress"]) == ("pending", 0, 0)
    assert "error" not in again
    assert env.client.post("/admin/dlq/retry", json={"task_id": ids[0]}).status_code == 404
    assert env.client.post("/admin/dlq/retry", json={}).status_code == 400

    everything = env.client.post("/admin/dlq/retry", json={"retry_all": True})
    assert everything.get_json() == {"message": "tasks re-queued", "retried_count": 2}
    assert env.client.get("/admin/dlq").get_json() == {"entries": [], "size": 0}

    env.worker()
    for task_id in ids:
        env.wait_state(task_id, "dead_letter")
    cleared = env.client.delete("/admin/dlq")
    assert cleared.get_json() == {"message": "DLQ cleared", "cleared_count": 3}
    assert env.client.get("/admin/dlq").get_json()["size"] == 0
    assert all(env.get(i)["state"] == "dead_letter" for i in ids)


def test_retry_endpoint_requeues_final_tasks_and_refuses_others(env):
    worker = env.worker()
    task = env.submit(type="echo", payload={"n": 1})
    env.wait_state(task["id"], "completed")
    worker.stop()
    response = env.client.post(f"/api/v1/tasks/{task['id']}/retry")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["state"], body["attempts"], body["id"]) == ("pending", 0, task["id"])
    assert "result" not in body
    assert env.client.post(f"/api/v1/tasks/{task['id']}/retry").status_code == 409
    assert env.client.post("/api/v1/tasks/nope/retry").status_code == 404
    env.worker()
    assert env.wait_state(task["id"], "completed")["attempts"] == 1


def test_task_of_a_killed_worker_completes_on_another_worker_exactly_once_more(env):
    first = env.worker("doomed", concurrency=1, worker_heartbeat_seconds=0.5)
    task = env.submit(type="sleep", payload={"seconds": 2}, max_retries=3)
    running = env.wait_state(task["id"], "running")
    assert running["worker_id"] == first.hostname
    first.kill()  # before the survivor exists, so the 2 s run cannot finish on a slow machine
    env.worker("survivor", concurrency=1, worker_heartbeat_seconds=0.5)

    done = env.wait_state(task["id"], "completed", timeout=15)
    assert done["worker_id"] != first.hostname and done["attempts"] == 2
    kinds = [k for _, k, _ in _events(env, task["id"])]
    assert kinds.count("task.started") == 2 and kinds.count("task.completed") == 1


def test_a_task_that_kills_its_process_every_time_ends_in_the_dlq(env):
    env.worker(concurrency=1, **FAST_RETRIES)
    task = env.submit(type="fail", payload={"kill_process": True}, max_retries=1)
    done = env.wait_state(task["id"], "dead_letter", timeout=20)
    assert done["attempts"] == 2
    assert "lost" in done["error"]
