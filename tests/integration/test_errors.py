"""Every error, on every route, is JSON in the contract's shape, with the field named."""

from __future__ import annotations

import re

import pytest

from app import create_app
from celery_app.settings import Settings


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "type"),
        ({"type": "nope"}, "type"),
        ({"type": "echo", "priority": 9}, "priority"),
        ({"type": "echo", "priority": "urgent"}, "priority"),
        ({"type": "echo", "max_retries": 101}, "max_retries"),
        ({"type": "echo", "max_retries": -1}, "max_retries"),
        ({"type": "echo", "timeout": 0}, "timeout"),
        ({"type": "echo", "timeout": "30"}, "timeout"),
        ({"type": "echo", "payload": [1]}, "payload"),
        ({"type": "echo", "metadata": "x"}, "metadata"),
        ({"type": "echo", "colour": "red"}, "colour"),
        ({"type": "sleep", "payload": {"minutes": 1}}, "payload"),
        ({"type": "echo", "scheduled_at": "tomorrow"}, "scheduled_at"),
    ],
)
def test_invalid_submission_is_400_naming_the_field(env, body, field):
    response = env.client.post("/api/v1/tasks", json=body)
    assert response.status_code == 400
    error = response.get_json()
    assert error["error"] == "Bad Request"
    assert re.search(rf"(^|; ){re.escape(field)}[.:]", error["message"]), error["message"]
    assert env.redis.dbsize() == 0, "a rejected submission wrote to Redis"


@pytest.mark.parametrize(("payload", "path"), [
    ({"seconds": "abc"}, "payload.seconds"),
    ({"seconds": 1, "steps": 2.5}, "payload.steps"),
    ({"stubborn": 1}, "payload.stubborn"),
    ({"minutes": 1}, "payload.minutes"),
])
def test_a_payload_must_fit_its_handlers_parameters_and_types(env, payload, path):
    response = env.client.post("/api/v1/tasks", json={"type": "sleep", "payload": payload})
    assert response.status_code == 400
    assert response.get_json()["message"].startswith(f"{path}:")
    assert env.redis.dbsize() == 0


@pytest.mark.parametrize(
    ("raw", "content_type", "fragment"),
    [
        (b"{not json", "application/json", "invalid JSON"),
        (b"[1, 2]", "application/json", "JSON object"),
        (b"", "application/json", "JSON object"),
        (b'{"type": "echo", "type": "fail"}', "application/json", "duplicate key"),
        (b'{"type": "echo", "payload": {"x": NaN}}', "application/json", "NaN"),
        (b"\xff\xfe", "application/json", "invalid JSON"),
        (b'{"type": "echo"}', "text/plain", None),
    ],
)
def test_malformed_bodies_are_400_and_plain_text_json_is_accepted(env, raw, content_type,
                                                                  fragment):
    response = env.client.post("/api/v1/tasks", data=raw, content_type=content_type)
    if fragment is None:
        assert response.status_code == 201
        return
    assert response.status_code == 400
    assert fragment in response.get_json()["message"]


def test_body_over_the_payload_limit_is_413(env):
    big = b'{"type": "echo", "payload": {"x": "' + b"a" * (1024 * 1024) + b'"}}'
    response = env.client.post("/api/v1/tasks", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "Request Entity Too Large"
    assert env.redis.dbsize() == 0


def test_unknown_route_and_method_are_json(env):
    missing = env.client.get("/api/v2/nothing")
    assert missing.status_code == 404 and missing.get_json()["error"] == "Not Found"
    wrong = env.client.put("/api/v1/tasks")
    assert wrong.status_code == 405 and wrong.get_json()["error"] == "Method Not Allowed"


def test_paths_work_with_and_without_trailing_slash_without_redirect(env):
    task = env.submit(type="echo")
    for path in ("/api/v1/tasks", "/api/v1/tasks/", f"/api/v1/tasks/{task['id']}",
                 f"/api/v1/tasks/{task['id']}/", "/admin/health", "/admin/health/"):
        assert env.client.get(path).status_code == 200, path
    assert env.client.post("/api/v1/tasks/", json={"type": "echo"}).status_code == 201


def test_unexpected_error_is_500_json_without_traceback(redis_server):
    app = create_app(Settings(redis_url=redis_server.url(63)))

    @app.get("/explode")
    def explode():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/explode")
    assert response.status_code == 500
    assert response.get_json() == {"error": "Internal Server Error", "message": "internal error"}
    assert b"secret" not in response.data and b"Traceback" not in response.data


@pytest.mark.parametrize(
    "query",
    ["page=0", "page=x", "page_size=0", "page_size=101", "state=done", "status=running",
     "type=nope", "sort_by=name", "order=up", "colour=red", "priority=urgent"],
)
def test_invalid_listing_query_is_400(env, query):
    response = env.client.get(f"/api/v1/tasks?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"] == "Bad Request"


def test_listing_filters_combine_instead_of_a_400(env):
    echo = env.submit(type="echo", payload={})
    env.submit(type="fail", payload={})
    response = env.client.get("/api/v1/tasks?state=pending&type=echo")
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 1 and [t["id"] for t in body["tasks"]] == [echo["id"]]
