"""Redis going away is a 503 in the contract's shape, fast; the service recovers by itself."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest
import redis
import requests

from app import create_app
from celery_app.settings import Settings
from tests.harness import RedisServer, WebServer, wait_for
from tests.integration.test_events import Listener, ws_url


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


def test_the_event_hub_waits_out_an_outage_logging_its_start_and_end_once(own_redis,
                                                                          tmp_path):
    log = tmp_path / "web.log"
    web = WebServer(own_redis.url(), workers=1, threads=8, log_path=log).start()
    try:
        listener = Listener(ws_url(web, "/ws?types=task.progress"))

        def hears(marker: str) -> bool:
            with redis.Redis(port=own_redis.port) as client:
                client.xadd("tq:events", {"type": "task.progress",
                                          "data": json.dumps({"task_id": marker})})
            return any(f["data"]["task_id"] == marker for f in list(listener.frames))

        wait_for(lambda: hears("before"), interval=0.1, message="the socket subscribed")
        own_redis.stop()
        # A socket opened meanwhile is refused before the upgrade, in the contract's shape.
        handshake = requests.get(web.url + "/ws", timeout=5, headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert handshake.status_code == 503
        assert handshake.json() == {"error": "Service Unavailable", "message": "redis unavailable"}
        # While Redis is away its port answers and hangs up at once: each of the hub's retries
        # is a connection seen here, and none of them may log again.
        with socket.create_server(("127.0.0.1", own_redis.port)) as stand_in:
            stand_in.settimeout(10)
            for _ in range(6):
                stand_in.accept()[0].close()
        assert log.read_text().count("event hub lost Redis") == 1
        own_redis.start()
        wait_for(lambda: hears("after"), interval=0.1, message="events after the outage")
        text = log.read_text()
        assert text.count("event hub lost Redis") == 1, text
        assert text.count("event hub reached Redis again") == 1, text
        assert "Traceback" not in text, text
        assert not listener.closed.is_set()
    finally:
        web.stop()
