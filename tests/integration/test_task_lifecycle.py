"""Tasks submitted over HTTP run on a real worker and end in the right state."""

from __future__ import annotations

from celery.result import AsyncResult


def test_echo_task_completes_with_its_payload_as_result(live):
    payload = {"greeting": "héllo", "big": 2**60, "empty": [], "nested": {"a": [1, {}]}}
    task = live.submit(type="echo", payload=payload, metadata={"source": "test"})
    assert task["state"] == "pending" and task["status"] == "pending"
    assert task["id"] == task["task_id"] and task["attempts"] == 0 and task["progress"] == 0

    done = live.wait_state(task["id"], "completed")
    assert done["result"] == payload
    assert done["payload"] == payload
    assert done["metadata"] == {"source": "test"}
    assert done["attempts"] == 1 and done["progress"] == 100 and done["status"] == "completed"
    assert done["worker_id"].startswith("shared")
    assert done["created_at"] <= done["started_at"] <= done["completed_at"]
    assert "error" not in done and "next_retry_at" not in done


def test_celery_sees_the_same_outcome_as_the_envelope(live):
    task = live.submit(type="echo", payload={"x": 1})
    live.wait_state(task["id"], "completed")
    result = AsyncResult(task["id"], app=live.app.extensions["taskqueue"].celery)
    assert result.get(timeout=5) == {"x": 1}


def test_failing_task_without_retries_ends_in_dead_letter_with_its_error(live):
    task = live.submit(type="fail", payload={"message": "boom"}, max_retries=0)
    done = live.wait_state(task["id"], "dead_letter")
    assert done["error"] == "boom" and done["error_message"] == "boom"
    assert done["status"] == "failed" and done["attempts"] == 1


def test_sleep_task_reports_progress_while_running(live):
    task = live.submit(type="sleep", payload={"seconds": 1.2, "steps": 4})
    running = live.wait_state(task["id"], "running")
    assert running["status"] == "processing"
    live.wait_state(task["id"], "completed")
    progress = [
        int(fields["data"].split('"progress":')[1].split(",")[0].rstrip("}"))
        for _, fields in live.redis.xrange("tq:events")
        if fields["type"] == "task.progress" and task["id"] in fields["data"]
    ]
    assert progress and progress == sorted(progress) and 0 < progress[0] < 100


def test_unknown_task_is_404_in_the_contract_shape(live):
    response = live.client.get("/api/v1/tasks/does-not-exist")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Not Found", "message": "task not found"}


def test_every_transition_appends_its_event_in_order(live):
    task = live.submit(type="echo", payload={})
    live.wait_state(task["id"], "completed")
    types = [f["type"] for _, f in live.redis.xrange("tq:events") if task["id"] in f["data"]]
    assert types == ["task.submitted", "task.started", "task.completed"]
