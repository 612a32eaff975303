"""Completion webhooks against real receivers: signed, retried, at least once, SSRF-safe."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import time
from collections.abc import Iterator

import pytest

from tests import conftest
from tests.harness import wait_for
from tests.receiver import Receiver
from tests.service import Env

SECRET = "s3cret-for-signing"
HOOKS = {
    "webhook_secret": SECRET,
    "webhook_allow_private": "true",
    "webhook_backoff_seconds": 0.2,
    "webhook_max_attempts": 3,
    "webhook_timeout_seconds": 1.5,
}


@pytest.fixture(scope="module")
def hooks(redis_server, tmp_path_factory) -> Iterator[Env]:
    """A database with one worker that signs, may reach loopback, retries fast (3 attempts)."""
    db = conftest._free_databases.pop(0)
    environment = Env(redis_server, db, tmp_path_factory.mktemp("hooks"))
    environment.worker("hooks", **HOOKS)
    try:
        yield environment
    finally:
        environment.close(flush=True)
        conftest._free_databases.append(db)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def callback_settled(env: Env, task_id: str, timeout: float = 15) -> dict:
    """The envelope once its callback is delivered or failed."""

    def settled() -> dict | None:
        envelope = env.get(task_id)
        state = envelope.get("callback", {}).get("state")
        return envelope if state in {"delivered", "failed"} else None

    return wait_for(settled, timeout=timeout, message=f"callback of {task_id}")


def test_every_final_state_posts_a_signed_body_to_the_callback_url(hooks, receiver):
    url = receiver.url + "/hook?source=tq"
    completed = hooks.submit(type="echo", payload={"n": 1}, callback_url=url)
    dead = hooks.submit(type="fail", payload={"message": "boom"}, max_retries=0, callback_url=url)
    later = {"scheduled_at": "2099-01-01T00:00:00Z", "callback_url": url}
    cancelled = hooks.submit(type="echo", **later)
    failed = hooks.submit(type="echo", **later)
    assert hooks.client.delete(f"/api/v1/tasks/{cancelled['id']}").status_code == 200
    assert (
        hooks.client.patch(f"/api/v1/tasks/{failed['id']}", json={"status": "failed"}).status_code
        == 200
    )
    expected = {
        completed["id"]: "completed",
        dead["id"]: "dead_letter",
        cancelled["id"]: "cancelled",
        failed["id"]: "failed",
    }

    for task_id in expected:
        envelope = callback_settled(hooks, task_id)
        assert envelope["callback"] == {
            "state": "delivered",
            "attempts": 1,
            "last_status": 200,
            "last_error": None,
        }
        assert envelope["callback_url"] == url
    assert len(receiver.requests) == 4
    for request in receiver.requests:
        assert request.path == "/hook?source=tq"
        assert request.headers["Content-Type"] == "application/json"
        mac = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-Taskqueue-Signature"] == f"sha256={mac}"
        body = json.loads(request.body)
        state = expected[body["task"]["id"]]
        assert body["event"] == f"task.{state}" == request.headers["X-Taskqueue-Event"]
        assert body["task"]["state"] == state
        assert request.headers["X-Taskqueue-Delivery"].endswith(":" + body["task"]["id"])
    deliveries = {r.headers["X-Taskqueue-Delivery"] for r in receiver.requests}
    assert len(deliveries) == 4


def test_batch_items_and_uploads_carry_their_callback_url(hooks, receiver):
    body = {
        "tasks": [{"type": "echo", "callback_url": f"{receiver.url}/b{n}"} for n in range(2)]
        + [{"type": "echo"}]
    }
    response = hooks.client.post("/api/v1/tasks/batch", json=body)
    assert response.status_code == 201, response.get_json()
    tasks = response.get_json()["tasks"]
    upload = hooks.client.post(
        "/api/v1/tasks/upload",
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(b"a,b\n1,2\n"), "t.csv"), "callback_url": f"{receiver.url}/up"},
    )
    assert upload.status_code == 201, upload.get_json()
    for task in [*tasks[:2], upload.get_json()]:
        assert callback_settled(hooks, task["id"])["callback"]["state"] == "delivered"
    assert "callback" not in hooks.wait_state(tasks[2]["id"], "completed")
    assert sorted(r.path for r in receiver.requests) == ["/b0", "/b1", "/up"]


def test_a_task_without_callback_url_sends_nothing_and_has_no_callback(hooks, receiver):
    task = hooks.submit(type="echo", payload={})
    done = hooks.wait_state(task["id"], "completed")
    assert "callback" not in done and "callback_url" not in done
    assert not hooks.redis.zcard("tq:webhooks") or all(
        not d.endswith(task["id"]) for d in hooks.redis.zrange("tq:webhooks", 0, -1)
    )


def test_a_failing_receiver_is_retried_with_backoff_under_one_delivery_id(hooks, receiver):
    receiver.respond = lambda n, request: 500 if n < 3 else 204
    task = hooks.submit(type="echo", callback_url=receiver.url)
    envelope = callback_settled(hooks, task["id"])
    assert envelope["callback"] == {
        "state": "delivered",
        "attempts": 3,
        "last_status": 204,
        "last_error": None,
    }
    assert len(receiver.requests) == 3
    assert len({r.headers["X-Taskqueue-Delivery"] for r in receiver.requests}) == 1
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    events = [
        json.loads(f["data"])
        for _, f in hooks.redis.xrange("tq:events")
        if f["type"] == "task.callback"
    ]
    mine = [e["callback"] for e in events if e["task_id"] == task["id"]]
    assert [c["state"] for c in mine] == ["retrying", "retrying", "delivered"]
    assert mine[0]["last_status"] == 500 and mine[0]["last_error"] == "HTTP 500"


def test_a_receiver_that_never_accepts_fails_after_max_attempts(hooks, receiver):
    receiver.respond = lambda n, request: 503
    task = hooks.submit(type="echo", callback_url=receiver.url)
    envelope = callback_settled(hooks, task["id"])
    assert envelope["callback"] == {
        "state": "failed",
        "attempts": 3,
        "last_status": 503,
        "last_error": "HTTP 503",
    }
    assert len(receiver.requests) == 3
    metrics = hooks.client.get("/metrics").get_data(as_text=True)
    assert 'taskqueue_webhook_deliveries_total{outcome="failed"}' in metrics


def test_a_slow_receiver_never_delays_tasks(hooks, receiver):
    release = threading.Event()
    receiver.respond = lambda n, request: (release.wait(10), 200)[1]
    try:
        slow = hooks.submit(type="echo", callback_url=receiver.url)
        wait_for(lambda: receiver.requests, message="the slow delivery to start")
        started = time.monotonic()
        quick = hooks.submit(type="echo", payload={"x": 1})
        hooks.wait_state(quick["id"], "completed", timeout=5)
        assert time.monotonic() - started < 5
        assert hooks.get(slow["id"])["state"] == "completed"
    finally:
        release.set()
    assert callback_settled(hooks, slow["id"])["callback"]["state"] in {"delivered", "failed"}


REFUSED_TARGETS = [
    "http://localhost:{port}/hook",  # a name that resolves to 127.0.0.1
    "http://[::ffff:127.0.0.1]:{port}/hook",  # IPv4-mapped IPv6 loopback
    "http://127.0.0.1:{port}/hook",
    "http://10.1.2.3:{port}/hook",  # private
    "http://169.254.169.254/latest/meta-data/",  # link-local (cloud metadata)
    "http://[fe80::1]:{port}/",  # IPv6 link-local
    "http://224.0.0.1:{port}/",  # multicast
]


def test_private_targets_are_refused_at_once_without_a_request(env, receiver):
    env.worker()  # default: WEBHOOK_ALLOW_PRIVATE=false
    tasks = [
        env.submit(type="echo", callback_url=t.format(port=receiver.port)) for t in REFUSED_TARGETS
    ]
    for task in tasks:
        callback = callback_settled(env, task["id"])["callback"]
        assert callback["state"] == "failed" and callback["attempts"] == 1, callback
        assert callback["last_status"] is None
        assert callback["last_error"].startswith("refused: "), callback
    assert receiver.requests == []
    assert env.redis.zcard("tq:webhooks") == 0  # none waits for a retry
    metrics = env.client.get("/metrics").get_data(as_text=True)
    assert f'taskqueue_webhook_deliveries_total{{outcome="refused"}} {len(tasks)}.0' in metrics


def test_a_worker_killed_mid_delivery_leaves_it_to_another_worker(env, receiver):
    arrived, release = threading.Event(), threading.Event()

    def respond(n: int, request) -> int:
        if n == 1:
            arrived.set()
            release.wait(10)  # answer only after the sender is dead
        return 200

    receiver.respond = respond
    first = env.worker("first", webhook_allow_private="true", webhook_timeout_seconds=1.5)
    task = env.submit(type="echo", callback_url=receiver.url)
    assert arrived.wait(15)
    first.kill()
    release.set()
    env.worker("second", webhook_allow_private="true", webhook_timeout_seconds=1.5)
    envelope = callback_settled(env, task["id"], timeout=20)
    assert envelope["callback"]["state"] == "delivered"
    ids = [r.headers["X-Taskqueue-Delivery"] for r in receiver.requests]
    assert len(ids) == 2 and len(set(ids)) == 1  # the same delivery, attempted twice
    assert len(receiver.delivered()) == 1  # and answered once
    assert envelope["callback"]["attempts"] == 2


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "example.com/hook",
        "http://",
        "https://example.com/" + "a" * 2048,
        "javascript:alert(1)",
    ],
)
def test_a_bad_callback_url_is_a_400_naming_the_field(live, url):
    response = live.client.post("/api/v1/tasks", json={"type": "echo", "callback_url": url})
    assert response.status_code == 400
    assert "callback_url" in response.get_json()["message"]
