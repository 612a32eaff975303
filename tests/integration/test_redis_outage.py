"""Redis going away is a 503 in the contract's shape, fast; the service recovers by itself."""

from __future__ import annotations

import signal
import time

import pytest

from app import create_app
from celery_app.settings import Settings
from tests.harness import RedisServer, wait_for


@pytest.fixture
def own_redis():
    server = RedisServer().start()
    yield server
    server.stop()


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_redis_down_is_503_within_two_seconds_then_recovers(own_redis):
    client = create_app(Settings(redis_url=own_redis.url())).test_client()
    task = client.post("/api/v1/tasks", json={"type": "echo"}).get_json()

    own_redis.stop()
    for call in (
        lambda: client.get(f"/api/v1/tasks/{task['id']}"),
        lambda: client.post("/api/v1/tasks", json={"type": "echo"}),
        lambda: client.get("/api/v1/tasks"),
        lambda: client.delete(f"/api/v1/tasks/{task['id']}"),
    ):
        response, elapsed = _timed(call)
        assert response.status_code == 503
        assert response.get_json() == {"error": "Service Unavailable",
                                       "message": "redis unavailable"}
        assert elapsed < 2.0
    health, elapsed = _timed(lambda: client.get("/admin/health"))
    assert health.status_code == 503 and elapsed < 2.0
    assert health.get_json()["status"] == "unhealthy"
    assert health.get_json()["redis"] == "disconnected" and health.get_json()["error"]

    own_redis.start()
    wait_for(lambda: client.get("/admin/health").status_code == 200, message="recovery")
    assert client.post("/api/v1/tasks", json={"type": "echo"}).status_code == 201


def test_unresponsive_redis_is_503_within_two_seconds(own_redis):
    client = create_app(Settings(redis_url=own_redis.url())).test_client()
    assert client.get("/admin/health").status_code == 200
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        response, elapsed = _timed(lambda: client.get("/api/v1/tasks/x"))
        assert response.status_code == 503 and elapsed < 2.0
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    wait_for(lambda: client.get("/admin/health").status_code == 200, message="recovery")
