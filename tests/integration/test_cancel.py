"""Cancelling: a 200 means the handler never ran and never will; started tasks answer 409."""

from __future__ import annotations

import threading

from celery.result import AsyncResult

from tests.harness import wait_for


def test_cancelled_task_never_runs_when_a_worker_arrives(env):
    task = env.submit(type="echo", payload={"x": 1})
    response = env.client.delete(f"/api/v1/tasks/{task['id']}")
    assert response.status_code == 200
    assert response.get_json()["state"] == "cancelled"
    assert response.get_json()["status"] == "cancelled"

    env.worker()
    wait_for(env.queue_empty, message="the worker to consume and acknowledge the message")
    after = env.get(task["id"])
    assert after["state"] == "cancelled" and after["attempts"] == 0
    assert "started_at" not in after and "result" not in after


def test_a_cancelled_then_purged_task_never_comes_back_when_a_worker_arrives(env):
    task_id = env.submit(type="echo", payload={"x": 2})["id"]
    assert env.client.delete(f"/api/v1/tasks/{task_id}").status_code == 200
    assert env.client.delete(f"/api/v1/tasks/{task_id}?purge=true").status_code == 200
    assert env.client.get(f"/api/v1/tasks/{task_id}").status_code == 404

    env.worker()
    wait_for(env.queue_empty, message="the worker to consume and acknowledge the message")
    assert env.client.get(f"/api/v1/tasks/{task_id}").status_code == 404  # not adopted
    kinds = [f["type"] for _, f in env.redis.xrange("tq:events")
             if f["type"].startswith("task.") and task_id in f["data"]]
    assert kinds and not {"task.started", "task.completed"} & set(kinds)


def test_running_task_cannot_be_cancelled(live):
    task = live.submit(type="sleep", payload={"seconds": 1.5})
    live.wait_state(task["id"], "running")
    response = live.client.delete(f"/api/v1/tasks/{task['id']}")
    assert response.status_code == 409
    assert response.get_json() == {
        "error": "Conflict", "message": "task cannot be cancelled in current state"}
    assert live.wait_state(task["id"], "completed")["result"]["slept"] >= 1.5


def test_finished_task_cannot_be_cancelled_but_can_be_purged(live):
    task = live.submit(type="echo", payload={})
    live.wait_state(task["id"], "completed")
    assert live.client.delete(f"/api/v1/tasks/{task['id']}").status_code == 409

    response = live.client.delete(f"/api/v1/tasks/{task['id']}?purge=true")
    assert response.status_code == 200
    assert response.get_json() == {"message": "Task deleted successfully", "task_id": task["id"]}
    assert live.client.get(f"/api/v1/tasks/{task['id']}").status_code == 404
    assert not any(task["id"] in live.redis.zrange(key, 0, -1)
                   for key in live.redis.scan_iter("tq:idx:*"))


def test_purge_of_a_task_that_is_not_final_is_409(env):
    task = env.submit(type="echo", payload={})
    response = env.client.delete(f"/api/v1/tasks/{task['id']}?purge=true")
    assert response.status_code == 409
    assert env.get(task["id"])["state"] == "pending"


def test_cancel_racing_the_worker_never_lets_a_cancelled_task_run(live):
    """100 tries of submit-then-cancel against a consuming worker: every task ends in exactly
    the state its DELETE answer promised."""
    celery = live.app.extensions["taskqueue"].celery
    answers: dict[str, int] = {}
    lock = threading.Lock()

    def race(n: int) -> None:
        client = live.app.test_client()
        task = client.post("/api/v1/tasks", json={"type": "echo", "payload": {"n": n}}).get_json()
        status = client.delete(f"/api/v1/tasks/{task['id']}").status_code
        with lock:
            answers[task["id"]] = status

    threads = [threading.Thread(target=race, args=(n,)) for n in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(answers.values()) <= {200, 409}
    for task_id, status in answers.items():
        if status == 200:
            envelope = live.get(task_id)
            assert envelope["state"] == "cancelled" and envelope["attempts"] == 0
        else:
            assert live.wait_state(task_id, "completed")["attempts"] == 1
    wait_for(live.queue_empty, message="every message consumed")
    for task_id, status in answers.items():
        celery_state = AsyncResult(task_id, app=celery).state
        if status == 200:
            assert live.get(task_id)["state"] == "cancelled"
            assert celery_state == "PENDING", "a cancelled task's handler ran"
        else:
            assert celery_state == "SUCCESS"
