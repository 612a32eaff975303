"""WebSockets: ``/ws`` (the event stream) and ``/api/v1/ws/tasks/<client_id>`` (the tracker).

Each connection gets an :class:`~app.outbox.Outbox` for its writes and a subscription at this
process's :class:`~app.hub.Hub`. ``/ws`` replays history first (``last_event_id``), then goes
live with the hub writing frames directly. Without ``last_event_id`` it replays from the
stream's newest id read before the handshake answers 101 (flask-sock answers before the view
runs): an event appended between the 101 and the subscription is not lost, so a client that
connects and then submits sees every event of its task; the tracker's thread turns events into
``task_update`` messages. ``permessage-deflate`` is declined at the handshake, so one encoded
frame serves every connection.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
from typing import Any

import redis
from flask import Flask, current_app, g, request
from flask_sock import ConnectionClosed, Sock
from marshmallow import Schema, fields

from celery_app import strictjson
from celery_app.connection import redis_client
from celery_app.errors import TaskNotFound
from celery_app.events import (
    EVENT_ID_PATTERN,
    Event,
    EventFilter,
    id_key,
    is_event_id,
    last_id,
    read_after,
)

from .api.document import document
from .hub import READ_BLOCK_MS, Hub, Subscription, frame_bytes
from .outbox import Outbox, attach_outbox, text_frame
from .services import runtime, store

logger = logging.getLogger(__name__)

TOO_SLOW = (1008, "client too slow")
#: Largest message a client may send (close 1009 above it); the tracker's messages are tiny.
MAX_MESSAGE_BYTES = 64 * 1024

sock = Sock()
_NO_RESULT = object()


class EventQuerySchema(Schema):
    """``/ws`` query string (validated by :meth:`EventFilter.parse`)."""

    types = fields.String(metadata={"description": "comma list; `task.*` style prefixes"})
    task_id = fields.String()
    last_event_id = fields.String(metadata={"pattern": EVENT_ID_PATTERN})


def hub() -> Hub:
    return current_app.extensions["taskqueue_hub"]


def _end(ws: Any, outbox: Outbox) -> None:
    """Close a connection that was dropped as too slow (with a reason when it can still hear)."""
    logger.info("dropping a WebSocket client: %s", outbox.dropped or "queue overflow")
    if outbox.dropped in {None, "backlog overflow"}:
        outbox.dropped = None
        with contextlib.suppress(Exception):  # closing a connection that may be broken
            ws.close(*TOO_SLOW)
            outbox.flush()
    with contextlib.suppress(OSError):
        outbox.raw.shutdown(socket.SHUT_RDWR)
    raise ConnectionClosed()


def _watch(ws: Any, outbox: Outbox, subscription: Subscription) -> None:
    """The connection thread's life once live: flush backlogs, notice ends."""
    while True:
        outbox.wake.wait(timeout=1.0)
        outbox.wake.clear()
        if outbox.dropped or subscription.overflowed:
            _end(ws, outbox)
        outbox.flush()
        if not ws.connected:
            raise ConnectionClosed()


def _send(ws: Any, outbox: Outbox, frame: dict[str, Any]) -> None:
    """Send one JSON frame from the connection thread (ordered with everything else)."""
    outbox.write(text_frame(strictjson.dumps(frame, separators=(",", ":")).encode()))
    outbox.flush()
    if outbox.dropped:
        _end(ws, outbox)


@sock.route("/ws")
@document(summary="Event stream (WebSocket)", tags=("events",),
          query=EventQuerySchema, responses={101: (None, "Switching Protocols")},
          description="WebSocket. Each message is one JSON event "
                      "`{id, type, timestamp, data}`. `types` filters by exact names or "
                      "`prefix.*`; `task_id` by task; `last_event_id` replays what was missed "
                      "since that event before going live.")
def event_socket(ws: Any) -> None:
    """Every event as one JSON frame; ``types``/``task_id`` filter, ``last_event_id`` replays."""
    ws.input_buffer = _Discard()  # client input is dropped as it arrives, never buffered
    outbox = attach_outbox(ws)
    asked = request.args.get("last_event_id") or None
    try:
        wanted = EventFilter.parse(request.args.get("types"), request.args.get("task_id"))
        if asked is not None and not is_event_id(asked):
            raise ValueError("last_event_id must be an event id such as 1763800000000-0")
    except ValueError as exc:
        _send(ws, outbox, {"type": "error", "message": str(exc)})
        ws.close(1008, str(exc))
        outbox.flush()
        return
    after = asked or g.get("handshake_event_id")
    try:
        subscription = hub().subscribe(wanted.matches, outbox, after)
    except redis.RedisError:  # after the 101: say it on the socket, not as an HTTP answer
        _unavailable(ws, outbox)
        return
    try:
        sent = (0, 0)  # the subscription starts after ``after`` itself (go_live keeps that)
        if after is not None:  # history (or the handshake's gap) first; live events queue up
            for event in read_after(runtime().redis, after):
                if wanted.matches(event):
                    outbox.write(frame_bytes(event))
                    outbox.flush()
                    if outbox.dropped:
                        _end(ws, outbox)
                sent = id_key(event.id)
        subscription.go_live(sent, frame_bytes)
        _watch(ws, outbox, subscription)
    except redis.RedisError:
        _unavailable(ws, outbox)
    finally:
        hub().unsubscribe(subscription)


def _unavailable(ws: Any, outbox: Outbox) -> None:
    """Redis failed after the handshake: an error frame, then close 1011 (the client
    reconnects with ``last_event_id`` and loses nothing)."""
    with contextlib.suppress(ConnectionClosed, OSError):
        _send(ws, outbox, {"type": "error", "message": "redis unavailable"})
        ws.close(1011, "redis unavailable")
        outbox.flush()


def task_update(envelope: dict[str, Any]) -> dict[str, Any]:
    """The tracker's view of a task."""
    update = {"type": "task_update", "task_id": envelope["task_id"], "status": envelope["status"],
              "state": envelope["state"], "progress": envelope.get("progress", 0)}
    if "error" in envelope:
        update["error_message"] = envelope["error"]
    if "result" in envelope:
        update["result"] = envelope["result"]
    return update


def _update_from_event(event: Event) -> dict[str, Any]:
    data = event.data
    update = {"type": "task_update", "task_id": data["task_id"], "status": data.get("status"),
              "state": data.get("state"), "progress": data.get("progress", 0)}
    if data.get("error"):
        update["error_message"] = data["error"]
    if event.type == "task.completed":
        result = store().result(data["task_id"], default=_NO_RESULT)
        if result is not _NO_RESULT:
            update["result"] = result
    return update


def _read_client(ws: Any, subscription: Subscription) -> None:
    """Forward what the client sends into the connection's queue (own thread)."""
    try:
        while True:
            subscription.queue.put(("client", ws.receive()))
    except ConnectionClosed:
        subscription.queue.put(("closed", None))


class _Discard(list):
    """An input buffer that keeps nothing: ``/ws`` never reads what clients send."""

    def append(self, item: Any) -> None:
        pass


def _handle(ws: Any, outbox: Outbox, raw: Any, watched: set[str]) -> None:
    try:
        message = strictjson.loads(raw)
        kind = message.get("type") if isinstance(message, dict) else None
    except strictjson.InvalidJSON as exc:
        _send(ws, outbox, {"type": "error", "message": f"invalid JSON message: {exc}"})
        return
    if kind == "ping":
        _send(ws, outbox, {"type": "pong"})
        return
    task_id = message.get("task_id") if kind in {"subscribe", "unsubscribe"} else None
    if not isinstance(task_id, str) or not task_id:
        error = ("task_id is required" if kind in {"subscribe", "unsubscribe"} else
                 "expected a JSON object with type subscribe, unsubscribe or ping")
        _send(ws, outbox, {"type": "error", "message": error})
        return
    if kind == "unsubscribe":
        watched.discard(task_id)
        return
    watched.add(task_id)  # before reading the state: no change can slip between
    try:
        _send(ws, outbox, task_update(store().get(task_id)))
    except TaskNotFound:
        watched.discard(task_id)
        _send(ws, outbox, {"type": "error", "task_id": task_id, "message": "task not found"})


@sock.route("/api/v1/ws/tasks/<client_id>")
@document(summary="Task updates for subscribed tasks (WebSocket)", tags=("events",),
          responses={101: (None, "Switching Protocols")},
          description="WebSocket. Send `{\"type\":\"subscribe\",\"task_id\":…}`, "
                      "`{\"type\":\"unsubscribe\",…}` or `{\"type\":\"ping\"}`; receive "
                      "`task_update` messages `{type, task_id, status, state, progress, "
                      "error_message?, result?}`, `pong`, and `error` messages.")
def tracker_socket(ws: Any, client_id: str) -> None:
    """The upload tracker's protocol: subscribe/unsubscribe/ping, task_update pushes."""
    outbox = attach_outbox(ws)
    watched: set[str] = set()
    subscription = hub().subscribe(
        lambda event: event.type.startswith("task.") and event.data.get("task_id") in watched)
    threading.Thread(target=_read_client, args=(ws, subscription), daemon=True,
                     name=f"ws-reader-{client_id}"[:60]).start()
    try:
        while True:
            if subscription.overflowed or outbox.dropped:
                _end(ws, outbox)
            try:
                item = subscription.queue.get(timeout=1.0)
            except queue.Empty:
                outbox.flush()
                if not ws.connected:
                    return
                continue
            if isinstance(item, tuple):
                if item[0] == "closed":
                    return
                _handle(ws, outbox, item[1], watched)
            elif item.data.get("task_id") in watched:
                _send(ws, outbox, _update_from_event(item))
    finally:
        hub().unsubscribe(subscription)


def init_app(app: Flask) -> None:
    """Register both WebSocket routes and this process's hub."""
    settings = app.extensions["taskqueue"].settings
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"ping_interval": 25,
                                                  "max_message_size": MAX_MESSAGE_BYTES})
    app.extensions["taskqueue_hub"] = Hub(
        lambda: redis_client(settings, socket_timeout=READ_BLOCK_MS / 1000 + 5))

    @app.before_request
    def before_handshake() -> None:
        """Runs before flask-sock answers 101. One encoded frame serves every connection only
        if none negotiates deflate; ``/ws`` without ``last_event_id`` notes the stream's
        newest id (one ``XREVRANGE``; Redis down → 503 instead of an upgrade)."""
        if request.url_rule is not None and request.url_rule.websocket:
            request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
            if request.url_rule.rule == "/ws" and not request.args.get("last_event_id"):
                g.handshake_event_id = last_id(runtime().redis)

    sock.init_app(app)
