"""One error shape for every route: ``{"error": <reason phrase>, "message": <what was wrong>}``.

All mapping from exceptions to HTTP statuses happens here; views just raise.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import redis
from flask import Flask, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing.exceptions import WebsocketMismatch

from celery_app.errors import TaskqueueError

logger = logging.getLogger(__name__)

#: Redis cannot be reached (or answered nothing in time).
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

#: Redis answers but refuses the command: error class → what ``/admin/health`` reports as
#: ``redis`` (and submits as the 503's reason). redis-py gives some codes their own class.
_REFUSED_CLASSES: tuple[tuple[type[Exception], str], ...] = (
    (redis.exceptions.BusyLoadingError, "loading"),  # LOADING: reading its dataset at start
    (redis.exceptions.OutOfMemoryError, "out of memory"),  # OOM: maxmemory with noeviction
    (redis.exceptions.ReadOnlyError, "read-only replica"),  # READONLY: a replica (failover)
    (redis.exceptions.MasterDownError, "replica without master"),  # MASTERDOWN
    (redis.exceptions.NoScriptError, "script cache flushed"),  # NOSCRIPT (redis-py reloads)
)
#: Refusals redis-py raises as a plain ResponseError: the reply's leading code → condition.
_REFUSED_CODES = {
    "MISCONF": "cannot persist (MISCONF)",  # a failed RDB save with stop-writes-on-bgsave-error
    "BUSY": "busy running a script",  # a script or function past busy-reply-threshold
    "NOREPLICAS": "not enough replicas",  # min-replicas-to-write not met
}

#: Every value :func:`redis_condition` may return (``/admin/health``'s ``redis`` besides
#: ``connected``).
REDIS_CONDITIONS = ("disconnected", *(c for _, c in _REFUSED_CLASSES), *_REFUSED_CODES.values())


def redis_condition(exc: BaseException) -> str | None:
    """What is wrong with Redis according to ``exc``: ``"disconnected"``, ``"out of memory"``,
    ``"read-only replica"``, … — or None when ``exc`` is no Redis availability problem (a
    bug, such as ``WRONGTYPE``, stays a 500)."""
    if isinstance(exc, REDIS_DOWN) and not isinstance(exc, redis.exceptions.BusyLoadingError):
        return "disconnected"
    for exc_class, condition in _REFUSED_CLASSES:
        if isinstance(exc, exc_class):
            return condition
    if isinstance(exc, redis.exceptions.ResponseError):
        code = str(exc).split(" ", 1)[0]
        return _REFUSED_CODES.get(code)
    return None


def error_response(status: int, message: str, reason: str | None = None):
    """The contract's error body with ``status``."""
    body = {"error": reason or HTTPStatus(status).phrase, "message": message}
    return jsonify(body), status


def flatten(messages: object, prefix: str = "") -> list[str]:
    """marshmallow's nested messages as ``field: message`` lines."""
    if isinstance(messages, dict):
        lines: list[str] = []
        for field, inner in messages.items():
            name = "" if field == "_schema" else str(field)  # list items are keyed 0, 1, …
            lines += flatten(inner, f"{prefix}.{name}" if prefix and name else prefix or name)
        return lines
    if isinstance(messages, list):
        return [line for item in messages for line in flatten(item, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def init_app(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response, status = error_response(exc.code or 500, exc.description or exc.name,
                                          exc.name)
        for name, value in exc.get_headers():  # e.g. Allow on 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(WebsocketMismatch)
    def not_upgraded(exc: WebsocketMismatch):
        """A plain request to a WebSocket route (werkzeug's generic 400 says nothing)."""
        response, status = error_response(
            426, "this is a WebSocket endpoint: send a WebSocket upgrade request")
        response.headers["Upgrade"] = "websocket"
        return response, status

    @app.errorhandler(TaskqueueError)
    def domain_error(exc: TaskqueueError):
        return error_response(exc.status, str(exc))

    @app.errorhandler(ValidationError)
    def validation_error(exc: ValidationError):
        return error_response(400, "; ".join(flatten(exc.messages)))

    @app.errorhandler(redis.exceptions.RedisError)
    def redis_unavailable(exc: redis.exceptions.RedisError):
        """Redis unreachable or refusing the command → 503, naming the refusal; nothing half
        done stays behind (every transition is one script, refused as a whole)."""
        condition = redis_condition(exc)
        if condition is None:
            return unexpected(exc)
        logger.warning("redis unavailable (%s): %s", condition, exc)
        if condition == "disconnected":
            return error_response(503, "redis unavailable")
        return error_response(503, f"redis unavailable: {condition}")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        logger.exception("unhandled error")
        return error_response(500, "internal error")
