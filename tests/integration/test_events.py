"""Live events over WebSockets, from real gunicorn web processes."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import time

import pytest
from simple_websocket import Client, ConnectionClosed
from websockets.exceptions import ConnectionClosed as WebSocketsClosed
from websockets.sync.client import connect as ws_connect

from celery_app import create_celery
from tests.harness import WebServer, wait_for
from tests.service import metric_samples, private_env


@pytest.fixture
def web(env):
    server = WebServer(env.url, workers=1, threads=16).start()
    yield server
    server.stop()


def ws_url(server: WebServer, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


OPEN: list[Listener] = []


@pytest.fixture(autouse=True)
def close_listeners():
    yield
    while OPEN:
        listener = OPEN.pop()
        with contextlib.suppress(ConnectionClosed):
            listener.close()


class Listener:
    """A WebSocket client that collects every JSON frame on its own thread."""

    def __init__(self, url: str) -> None:
        self.client = Client.connect(url)
        OPEN.append(self)
        self.frames: list[dict] = []
        self.closed = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                self.frames.append(json.loads(self.client.receive()))
        except ConnectionClosed:
            self.closed.set()

    def send(self, message: dict) -> None:
        self.client.send(json.dumps(message))

    def wait_for(self, predicate, timeout: float = 10, message: str = "frame") -> dict:
        def found():
            return next((f for f in list(self.frames) if predicate(f)), None)
        return wait_for(found, timeout=timeout, message=message)

    def of(self, task_id: str) -> list[dict]:
        return [f for f in list(self.frames) if f.get("data", f).get("task_id") == task_id]

    def close(self) -> None:
        self.client.close()


def _connected(listener: Listener, env, kind: str = "task.progress") -> None:
    """Wait until the server side subscribed: a marker event written now reaches the client."""
    marker = f"marker-{time.monotonic_ns()}"
    def probe():
        env.redis.xadd("tq:events", {"type": kind, "data": json.dumps({"task_id": marker})})
        return any(f.get("data", {}).get("task_id") == marker for f in list(listener.frames))
    wait_for(probe, timeout=10, interval=0.1, message="subscription")


def test_a_task_lifecycle_arrives_in_order_with_the_contract_shape(env, web):
    env.worker()
    listener = Listener(ws_url(web, "/ws?types=task.*"))
    _connected(listener, env)
    task = env.submit(type="sleep", payload={"seconds": 0.6, "steps": 3}, priority="high")
    listener.wait_for(lambda f: f["type"] == "task.completed" and
                      f["data"]["task_id"] == task["id"], message="completion")
    frames = listener.of(task["id"])
    kinds = [f["type"] for f in frames]
    assert kinds[:2] == ["task.submitted", "task.started"] and kinds[-1] == "task.completed"
    assert set(kinds[2:-1]) == {"task.progress"} and len(kinds) >= 4
    first = frames[0]
    assert set(first) == {"id", "type", "timestamp", "data"}
    assert first["timestamp"].endswith("Z")
    assert {"task_id", "type", "priority", "state", "status", "progress"} <= set(first["data"])
    assert first["data"]["priority"] == "high" and first["data"]["type"] == "sleep"
    ids = [tuple(map(int, f["id"].split("-"))) for f in frames]
    assert ids == sorted(ids)
    progress = [f["data"]["progress"] for f in frames if f["type"] == "task.progress"]
    assert progress == sorted(progress)
    listener.close()


def test_an_event_appended_as_soon_as_the_socket_opens_arrives(env):
    # The server answers 101 before its view subscribes; an event appended in between must
    # still arrive. Each fresh web process's first socket also starts its event reader, the
    # widest such gap, so this opens sockets on two processes, twelve times each.
    servers = [WebServer(env.url, workers=1, threads=16).start() for _ in range(2)]
    try:
        sent = []
        for n in range(12):
            for server in servers:
                listener = Listener(ws_url(server, "/ws?types=task.progress"))
                marker = f"opened-{n}-{server.port}"
                env.redis.xadd("tq:events", {"type": "task.progress",
                                             "data": json.dumps({"task_id": marker})})
                sent.append((listener, marker))
        for listener, marker in sent:
            listener.wait_for(lambda f, m=marker: f["data"]["task_id"] == m, timeout=10,
                              message=f"{marker}, appended right after the handshake")
            # Only what was appended after its own handshake: the earlier markers are not
            # replayed to a later socket.
            earlier = {m for _, m in sent[:sent.index((listener, marker))]}
            assert not earlier & {f["data"]["task_id"] for f in listener.frames}
    finally:
        for server in servers:
            server.stop()


def test_type_and_task_filters_select_events(env, web):
    env.worker()
    completed_only = Listener(ws_url(web, "/ws?types=task.completed"))
    workers_only = Listener(ws_url(web, "/ws?types=worker.*"))
    one_task = env.submit(type="echo", payload={"n": 1})
    other = env.submit(type="echo", payload={"n": 2})
    by_task = Listener(ws_url(web, f"/ws?task_id={one_task['id']}"))
    _connected(completed_only, env, "task.completed")
    for task in (one_task, other):
        env.wait_state(task["id"], "completed")
    completed_only.wait_for(lambda f: f["data"].get("task_id") == other["id"])
    assert {f["type"] for f in completed_only.frames} == {"task.completed"}
    assert not [f for f in workers_only.frames if not f["type"].startswith("worker.")]
    assert all(f["data"]["task_id"] == one_task["id"] for f in by_task.frames)

    # The server answers a bad filter with an error frame and a close right after the
    # handshake; they may arrive in the handshake's own TCP segment, which simple-websocket's
    # client leaves unread once the server has closed. websockets' client reads them.
    with ws_connect(ws_url(web, "/ws?types=task.exploded"), open_timeout=10) as bad:
        error = json.loads(bad.recv(timeout=10))
        assert error["type"] == "error" and "task.exploded" in error["message"]
        with pytest.raises(WebSocketsClosed) as closed:
            bad.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_replay_from_last_event_id_then_live_has_no_gap_and_no_duplicate(env, web):
    env.worker(concurrency=2)
    before = env.submit(type="echo", payload={"phase": "before"})
    env.wait_state(before["id"], "completed")
    start_id = env.redis.xrange("tq:events", count=1)[0][0]

    stop = threading.Event()
    def keep_submitting():
        client = env.app.test_client()
        while not stop.is_set():
            client.post("/api/v1/tasks", json={"type": "echo"})
    producer = threading.Thread(target=keep_submitting)
    producer.start()
    try:
        listener = Listener(ws_url(web, f"/ws?last_event_id={start_id}"))
        time.sleep(0)  # let the producer run across the seam
        wait_for(lambda: len(listener.frames) > 30, message="replay and live frames")
    finally:
        stop.set()
        producer.join()
    last = env.redis.xrevrange("tq:events", count=1)[0][0]
    listener.wait_for(lambda f: f["id"] == last, message="the newest event")
    received = [f["id"] for f in list(listener.frames)]
    expected = [entry_id for entry_id, _ in
                env.redis.xrange("tq:events", min=f"({start_id}", max=received[-1])]
    assert received == expected  # every event in order: no gap, no duplicate


def test_tracker_protocol_subscribe_updates_unsubscribe_ping_and_errors(env, web):
    tracker = Listener(ws_url(web, "/api/v1/ws/tasks/client-1"))
    tracker.send({"type": "ping"})
    tracker.wait_for(lambda f: f == {"type": "pong"})

    task = env.submit(type="sleep", payload={"seconds": 0.8, "steps": 4})
    tracker.send({"type": "subscribe", "task_id": task["id"]})
    snapshot = tracker.wait_for(lambda f: f.get("type") == "task_update")
    assert snapshot == {"type": "task_update", "task_id": task["id"], "status": "pending",
                        "state": "pending", "progress": 0}

    env.worker()
    done = tracker.wait_for(lambda f: f.get("state") == "completed", message="completed update")
    assert done["status"] == "completed" and done["result"]["slept"] >= 0.8
    updates = [f for f in tracker.frames if f.get("type") == "task_update"]
    assert any(f["status"] == "processing" and 0 < f["progress"] < 100 for f in updates)

    tracker.send({"type": "unsubscribe", "task_id": task["id"]})
    tracker.send({"type": "ping"})
    wait_for(lambda: tracker.frames.count({"type": "pong"}) == 2, message="second pong")
    seen = len(tracker.frames)
    assert env.client.post(f"/api/v1/tasks/{task['id']}/retry").status_code == 200
    env.wait_state(task["id"], "completed")
    tracker.send({"type": "ping"})
    wait_for(lambda: tracker.frames.count({"type": "pong"}) == 3, message="third pong")
    assert len(tracker.frames) == seen + 1, "updates kept coming after unsubscribe"

    tracker.send({"type": "subscribe", "task_id": "task-0-missing"})
    assert tracker.wait_for(lambda f: f.get("type") == "error" and "task_id" in f) == {
        "type": "error", "task_id": "task-0-missing", "message": "task not found"}
    tracker.client.send("{not json")
    tracker.wait_for(lambda f: f.get("type") == "error" and "task_id" not in f)
    tracker.send({"type": "ping"})
    wait_for(lambda: tracker.frames.count({"type": "pong"}) == 4, message="still open")
    assert not tracker.closed.is_set()


def test_worker_joined_and_left_reach_websocket_clients(env, web):
    listener = Listener(ws_url(web, "/ws?types=worker.*"))
    _connected(listener, env, "worker.paused")
    worker = env.worker()
    listener.wait_for(lambda f: f["type"] == "worker.joined" and
                      f["data"]["worker_id"] == worker.hostname)
    worker.stop()
    listener.wait_for(lambda f: f["type"] == "worker.left" and
                      f["data"]["worker_id"] == worker.hostname)


def test_two_web_processes_deliver_the_same_event(env, web):
    second = WebServer(env.url, workers=1, threads=8).start()
    try:
        listeners = [Listener(ws_url(server, "/ws")) for server in (web, second)]
        for listener in listeners:
            _connected(listener, env)
        task = env.submit(type="echo")
        frames = [lst.wait_for(lambda f: f["type"] == "task.submitted" and
                               f["data"]["task_id"] == task["id"]) for lst in listeners]
        assert frames[0] == frames[1]
    finally:
        second.stop()


def test_a_direct_celery_publish_gets_an_envelope_and_events(env, web):
    env.worker()
    listener = Listener(ws_url(web, "/ws?types=task.*"))
    _connected(listener, env)
    celery = create_celery(env.settings)
    result = celery.tasks["echo"].apply_async(kwargs={"direct": True}, queue="high")
    envelope = env.get(result.id)
    assert envelope["priority"] == "high" and envelope["payload"] == {"direct": True}
    assert result.get(timeout=10) == {"direct": True}
    done = env.wait_state(result.id, "completed")
    assert done["attempts"] == 1
    listener.wait_for(lambda f: f["type"] == "task.completed" and
                      f["data"]["task_id"] == result.id)
    assert [f["type"] for f in listener.of(result.id)] == [
        "task.submitted", "task.started", "task.completed"]


def test_queue_depth_events_follow_the_queues(env, web):
    listener = Listener(ws_url(web, "/ws?types=queue.depth"))
    env.worker(queues="critical")
    env.submit(type="echo", priority="low")
    event = listener.wait_for(lambda f: f["data"]["queues"]["low"] == 1, message="depth 1")
    assert event["data"]["total"] == 1


def _stalled_client(server: WebServer, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0]
    return sock


def test_a_client_that_stops_reading_is_dropped_without_stalling_others(env, web):
    stalled = _stalled_client(web, "/ws?types=task.progress")
    healthy = Listener(ws_url(web, "/ws?types=worker.paused"))
    _connected(healthy, env, "worker.paused")
    padding = "x" * 4096
    pipe = env.redis.pipeline()
    for n in range(3000):  # ~12 MB the stalled client never takes
        pipe.xadd("tq:events", {"type": "task.progress",
                                "data": json.dumps({"task_id": f"flood-{n}", "pad": padding})})
    pipe.execute()
    env.redis.xadd("tq:events", {"type": "worker.paused",
                                 "data": json.dumps({"worker_id": "after-flood"})})
    healthy.wait_for(lambda f: f["data"].get("worker_id") == "after-flood", timeout=5,
                     message="the healthy client's event despite the stalled one")

    stalled.settimeout(1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # read the backlog until the server hangs up
        try:
            if not stalled.recv(1 << 20):
                break
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
    else:
        raise AssertionError("the stalled client was never disconnected")
    stalled.close()


def test_every_worker_heartbeat_is_an_event_with_the_workers_public_fields(env, web):
    listener = Listener(ws_url(web, "/ws?types=worker.heartbeat"))
    _connected(listener, env, "worker.heartbeat")
    worker = env.worker(queues="critical,high", concurrency=2, worker_heartbeat_seconds=1)

    def beats():
        found = [f["data"] for f in list(listener.frames)
                 if f["data"].get("worker_id") == worker.hostname]
        return found if len(found) >= 2 else None

    first, second = wait_for(beats, message="two heartbeats")[:2]
    assert set(first) == {"worker_id", "state", "started_at", "last_heartbeat", "active_tasks",
                          "concurrency", "queues"}
    assert first["state"] == "idle" and first["active_tasks"] == 0
    assert first["concurrency"] == 2 and first["queues"] == ["critical", "high"]
    assert second["started_at"] == first["started_at"]
    assert second["last_heartbeat"] > first["last_heartbeat"]
    record = env.redis.hgetall(f"tq:worker:{worker.hostname}")
    assert record["last_heartbeat"] >= second["last_heartbeat"]


def test_entries_not_in_the_streams_shape_are_skipped_and_what_follows_arrives(env, web):
    """Something other than this service may write to ``tq:events``. An entry without a type,
    or whose data is not a JSON object, is skipped by ``/ws`` (live and replayed) and counts as
    nothing in the metrics fold; every reader goes on with what follows it."""
    env.worker()
    listener = Listener(ws_url(web, "/ws"))
    _connected(listener, env)
    before = env.redis.xrevrange("tq:events", count=1)[0][0]
    for fields in ({"data": "{}"},
                   {"type": "task.completed", "data": "not json"},
                   {"type": "task.started", "data": "[1, 2]"},
                   {"type": "task.completed", "data": json.dumps({"duration_ms": "soon"})}):
        env.redis.xadd("tq:events", fields)
    task = env.submit(type="echo", payload={"n": 1})

    def completed(frame: dict) -> bool:
        return frame["type"] == "task.completed" and frame["data"].get("task_id") == task["id"]

    listener.wait_for(completed, message="the completion after the malformed entries")
    replay = Listener(ws_url(web, f"/ws?last_event_id={before}"))
    replay.wait_for(completed, message="the completion, replayed past them")
    for frame in list(listener.frames) + list(replay.frames):
        assert set(frame) == {"id", "type", "timestamp", "data"}
        assert frame["type"] and isinstance(frame["data"], dict), frame
    replayed = [f["type"] for f in replay.frames if f["type"] == "task.completed"]
    assert len(replayed) == 2  # the well-formed foreign one (data without a type) and the task's

    scraped = metric_samples(env.client.get("/metrics").text)
    assert scraped[("taskqueue_task_duration_seconds_count", (("type", "echo"),))] == 1


def test_a_socket_gets_nothing_before_its_starting_point_while_the_reader_is_behind(tmp_path):
    """The process's reader may still be dispatching older events when a socket subscribes
    (here it is held back: its user may not ``XREAD`` for a while). Neither a socket that
    resumes from the newest id nor one opened without ``last_event_id`` gets any of them."""
    with private_env(tmp_path) as env:
        log = tmp_path / "web.log"
        web = WebServer(env.url, workers=1, threads=8, log_path=log).start()
        try:
            warm = Listener(ws_url(web, "/ws?types=task.progress"))
            _connected(warm, env)  # the process's reader runs
            env.redis.execute_command("ACL", "SETUSER", "default", "-xread")
            wait_for(lambda: "event hub lost Redis (NoPermissionError" in log.read_text(),
                     message="the reader held back")
            older = [f"older-{n}" for n in range(10)]
            for marker in older:
                env.redis.xadd("tq:events", {"type": "task.progress",
                                             "data": json.dumps({"task_id": marker})})
            newest = env.redis.xrevrange("tq:events", count=1)[0][0]
            resumed = Listener(ws_url(web, f"/ws?types=task.progress&last_event_id={newest}"))
            fresh = Listener(ws_url(web, "/ws?types=task.progress"))
            env.redis.execute_command("ACL", "SETUSER", "default", "+xread")
            env.redis.xadd("tq:events", {"type": "task.progress",
                                         "data": json.dumps({"task_id": "after"})})
            for listener in (resumed, fresh):
                listener.wait_for(lambda f: f["data"]["task_id"] == "after")
                assert [f["data"]["task_id"] for f in listener.frames] == ["after"]
            assert [f["data"]["task_id"] for f in warm.frames][-11:] == [*older, "after"]
        finally:
            env.redis.execute_command("ACL", "SETUSER", "default", "+xread")
            web.stop()
