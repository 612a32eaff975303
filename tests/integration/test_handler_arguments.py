"""Handler argument rules are declared once, in the handler's signature, and checked wherever a
task enters: the HTTP submit (400), a direct Celery publish (an error raised to the caller,
nothing stored) and the worker (for a message that bypassed both: dead-lettered at once,
never retried)."""

from __future__ import annotations

import pytest

from celery_app import create_celery
from celery_app.messages import DELIVERY_HEADER
from celery_app.payloads import InvalidPayload
from tests.harness import wait_for


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"seconds": 1e308},
            "payload.seconds: Must be greater than or equal to 0 and less than or equal to 3600",
        ),
        ({"seconds": -0.5}, "payload.seconds: Must be greater than or equal to 0"),
        (
            {"steps": 0},
            "payload.steps: Must be greater than or equal to 1 and less than or equal to 100",
        ),
        ({"steps": 101}, "payload.steps: Must be"),
        ({"bogus": 1}, "payload.bogus: Unknown field."),
        ({"seconds": "1"}, "payload.seconds: Not a valid number."),
    ],
)
def test_http_submit_checks_the_signatures_limits(env, payload, message):
    response = env.client.post("/api/v1/tasks", json={"type": "sleep", "payload": payload})
    assert response.status_code == 400
    assert message in response.get_json()["message"]
    assert env.redis.dbsize() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bogus": 1}, "sleep.bogus: Unknown field."),
        ({"seconds": 1e308}, "sleep.seconds: Must be greater than or equal to 0"),
        ({"steps": 2.5}, "sleep.steps: Not a valid integer."),
    ],
)
def test_a_direct_publish_with_bad_arguments_raises_to_the_caller(env, kwargs, message):
    celery = create_celery(env.settings)
    with pytest.raises(InvalidPayload, match=message.replace(".", r"\.")):
        celery.send_task("sleep", kwargs=kwargs)
    with pytest.raises(InvalidPayload):
        celery.tasks["sleep"].delay(**kwargs)
    assert env.redis.dbsize() == 0


def test_the_celery_native_handles_publish_like_the_api(env):
    from celery_app import tasks

    assert tasks.echo.name == "echo" and tasks.file_process.name == "file.process"
    celery = create_celery(env.settings)
    result = celery.tasks[tasks.sleep.name].apply_async(kwargs={"seconds": 0}, queue="high")
    envelope = env.get(result.id)
    assert (envelope["type"], envelope["priority"], envelope["payload"]) == (
        "sleep",
        "high",
        {"seconds": 0},
    )


@pytest.mark.parametrize("kwargs", [{"bogus": 1}, {"seconds": 99999}])
def test_a_message_that_bypassed_the_checks_is_dead_lettered_without_retries(live, kwargs):
    celery = live.app.extensions["taskqueue"].celery
    # A producer that is not this service (it sets the delivery header itself).
    result = celery.send_task("sleep", kwargs=kwargs, headers={DELIVERY_HEADER: "foreign"})
    wait_for(
        lambda: live.redis.exists(f"tq:task:{result.id}"),
        timeout=15,
        message="the worker to adopt the foreign message",
    )
    envelope = live.wait_state(result.id, "dead_letter")
    assert envelope["attempts"] == 1 and envelope["max_retries"] == 3
    assert envelope["error"].startswith("invalid arguments: payload.")
    entries = live.client.get("/admin/dlq").get_json()["entries"]
    assert [e["reason"] for e in entries if e["task"]["id"] == result.id] == ["non-retryable error"]
