"""Protocol edges against real gunicorn: bodies over the limit (declared or chunked) get their
413 and ``Connection: close`` and are never lost to a reset; idle keep-alive connections
outlive common load-balancer timeouts; long URLs reach the app; WebSocket messages are capped
and ``/ws`` input is discarded."""

from __future__ import annotations

import http.client
import json
import os
import time

import pytest
import requests
from simple_websocket import Client, ConnectionClosed

from tests.conftest import _free_databases
from tests.harness import WebServer, wait_for

MAX_UPLOAD = 4096


@pytest.fixture(scope="module")
def web(redis_server):
    db = _free_databases.pop(0)
    server = WebServer(
        redis_server.url(db), workers=1, threads=16, max_upload_bytes=MAX_UPLOAD
    ).start()
    try:
        yield server
    finally:
        server.stop()
        import redis

        redis.Redis.from_url(redis_server.url(db)).flushdb()
        _free_databases.append(db)


def _chunks(data: bytes, size: int = 16 * 1024):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _big_body(size: int) -> bytes:
    return b'{"type":"echo","payload":{"s":"' + b"x" * size + b'"}}'


def test_a_chunked_body_over_the_limit_is_a_413_that_closes_the_connection(web):
    for size in (int(1.5 * 1024 * 1024), 1024 * 1024 + 1):
        response = requests.post(
            f"{web.url}/api/v1/tasks",
            data=_chunks(_big_body(size)),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "Request Entity Too Large"
        assert response.headers["Connection"].lower() == "close"


def test_a_chunked_body_within_the_limit_is_read_whole(web):
    body = _big_body(512 * 1024)
    response = requests.post(
        f"{web.url}/api/v1/tasks",
        data=_chunks(body),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 201
    assert len(response.json()["payload"]["s"]) == 512 * 1024


def test_a_declared_length_over_the_limit_is_a_413_that_closes_the_connection(web):
    response = requests.post(
        f"{web.url}/api/v1/tasks",
        data=_big_body(1024 * 1024),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.headers["Connection"].lower() == "close"


def test_a_small_error_keeps_the_connection_alive(web):
    response = requests.post(f"{web.url}/api/v1/tasks", data=b"{", timeout=10)
    assert response.status_code == 400
    assert response.headers["Connection"].lower() == "keep-alive"


@pytest.mark.parametrize("chunked", [False, True])
def test_every_early_413_on_a_reused_connection_reaches_the_client(web, chunked):
    session = requests.Session()
    data = os.urandom(150 * 1024)
    answers = []
    for _ in range(40):
        if chunked:
            response = session.post(
                f"{web.url}/api/v1/tasks/upload",
                data=_chunks(data),
                headers={"Content-Type": "multipart/form-data; boundary=Z"},
                timeout=30,
            )
        else:
            response = session.post(
                f"{web.url}/api/v1/tasks/upload", files={"file": ("f.bin", data)}, timeout=30
            )
        answers.append(response.status_code)
    assert answers == [413] * 40


def test_an_idle_keep_alive_connection_is_still_open_after_gunicorns_default(web):
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    connection.request("GET", "/admin/health")
    first = connection.getresponse()
    first.read()
    assert first.getheader("Connection").lower() == "keep-alive"
    opened = connection.sock
    time.sleep(2.5)  # idle past gunicorn's 2 s default: the stimulus, not a synchronisation
    connection.request("GET", "/admin/health")
    second = connection.getresponse()
    assert second.status == 200 and connection.sock is opened
    second.read()
    connection.close()


@pytest.mark.parametrize("length", [5000, 8000])
def test_long_urls_reach_the_app_and_get_json(web, length):
    response = requests.get(f"{web.url}/api/v1/tasks/{'x' * length}", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "message": "task not found"}


def _ws(web, path: str) -> Client:
    return Client.connect(web.url.replace("http://", "ws://") + path)


def test_a_websocket_message_over_the_cap_closes_with_1009(web):
    client = _ws(web, "/api/v1/ws/tasks/big")
    client.send(json.dumps({"type": "ping"}))
    assert json.loads(client.receive(timeout=10)) == {"type": "pong"}
    client.send("x" * (1024 * 1024))

    def closed() -> bool:
        try:
            client.receive(timeout=0.2)
        except ConnectionClosed:
            return True
        return False

    wait_for(closed, timeout=15, message="the oversized message to close the socket")
    assert client.close_reason == 1009


def test_lone_surrogates_in_websocket_messages_are_an_error_frame(web):
    client = _ws(web, "/api/v1/ws/tasks/text")
    try:
        for raw, field in (
            ('{"type":"subscribe","task_id":"\\ud83d"}', "task_id"),
            ('{"type":"ping","\\udc00":1}', "<key>"),
            ('{"type":"subscribe","task_id":"x","n":1e999}', "n"),
        ):
            client.send(raw)
            answer = json.loads(client.receive(timeout=10))
            assert answer["type"] == "error" and f"{field}: " in answer["message"], answer
        client.send('{"type":"ping"}')
        assert json.loads(client.receive(timeout=10)) == {"type": "pong"}
    finally:
        client.close()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def _web_worker_pid(web) -> int:
    with open(f"/proc/{web.process.pid}/task/{web.process.pid}/children") as listing:
        return int(listing.read().split()[0])


def test_input_sent_to_the_event_stream_is_discarded(web):
    worker = _web_worker_pid(web)
    client = _ws(web, "/ws")
    try:
        before = _rss_kib(worker)
        frame = "y" * (60 * 1024)
        for _ in range(600):  # 35 MiB that nobody reads
            client.send(frame)
        client.send("done")
        response = requests.post(f"{web.url}/api/v1/tasks", json={"type": "echo"}, timeout=10)
        task_id = response.json()["id"]
        while True:  # the stream still serves events after all that input
            event = json.loads(client.receive(timeout=15))
            if event["data"].get("task_id") == task_id:
                break
        grown = _rss_kib(worker) - before
        assert grown < 12 * 1024, f"web process grew by {grown} KiB"
    finally:
        client.close()
