"""``GET /api/v1/tasks/{id}?wait=S``: answered when the task is final, or after S seconds."""

from __future__ import annotations

import threading
import time

import pytest

from celery_app import model
from tests.harness import wait_for

FAR = "2099-01-01T00:00:00Z"


def parked(env, task_id: str) -> bool:
    """Whether a long poll on ``task_id`` is registered with the app's event hub."""
    return task_id in env.app.extensions["taskqueue_hub"]._waiters


def test_a_long_poll_answers_as_soon_as_the_task_is_final(live):
    task = live.submit(type="echo", scheduled_at=FAR)
    answer: dict = {}

    def poll() -> None:
        response = live.client.get(f"/api/v1/tasks/{task['id']}?wait=20")
        answer.update(status=response.status_code, body=response.get_json(), at=time.monotonic())

    waiter = threading.Thread(target=poll)
    waiter.start()
    wait_for(lambda: parked(live, task["id"]), message="the poll to park")
    assert not answer
    finished = time.monotonic()
    assert (
        live.client.patch(f"/api/v1/tasks/{task['id']}", json={"status": "completed"}).status_code
        == 200
    )
    waiter.join(10)
    assert answer["status"] == 200 and answer["body"]["state"] == "completed"
    assert answer["at"] - finished < 2.0  # woken by the event, not by the 20 s timeout


@pytest.mark.parametrize("end", ["completed", "dead_letter", "cancelled"])
def test_a_long_poll_follows_a_task_to_each_final_state(live, end):
    body = {
        "completed": {"type": "echo"},
        "dead_letter": {"type": "fail", "max_retries": 0},
        "cancelled": {"type": "echo", "scheduled_at": FAR},
    }[end]
    task = live.submit(**body)
    if end == "cancelled":

        def cancel() -> None:
            wait_for(lambda: parked(live, task["id"]), message="the poll to park")
            live.client.delete(f"/api/v1/tasks/{task['id']}")

        threading.Thread(target=cancel).start()
    started = time.monotonic()
    response = live.client.get(f"/api/v1/tasks/{task['id']}?wait=15")
    assert response.status_code == 200 and response.get_json()["state"] == end
    assert time.monotonic() - started < 10


def test_a_long_poll_times_out_with_the_current_envelope(live):
    task = live.submit(type="echo", scheduled_at=FAR)
    started = time.monotonic()
    response = live.client.get(f"/api/v1/tasks/{task['id']}?wait=0.5")
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response.get_json()["state"] == model.SCHEDULED
    assert 0.5 <= elapsed < 3


def test_a_final_task_answers_a_long_poll_at_once(live):
    task = live.submit(type="echo")
    live.wait_state(task["id"], "completed")
    started = time.monotonic()
    response = live.client.get(f"/api/v1/tasks/{task['id']}/?wait=60")
    assert response.get_json()["state"] == "completed"
    assert time.monotonic() - started < 1


def test_a_long_poll_on_an_unknown_task_is_a_404(live):
    response = live.client.get("/api/v1/tasks/no-such-task?wait=5")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Not Found", "message": "task not found"}


@pytest.mark.parametrize("wait", ["0", "-1", "60.5", "61", "abc", "nan", "inf", ""])
def test_a_bad_wait_is_a_400_naming_it(live, wait):
    task = live.submit(type="echo", scheduled_at=FAR)
    response = live.client.get(f"/api/v1/tasks/{task['id']}?wait={wait}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "Bad Request" and body["message"].startswith("wait:")
