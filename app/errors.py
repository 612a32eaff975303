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

REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
              redis.exceptions.BusyLoadingError)


def error_response(status: int, message: str, reason: str | None = None):
    """The contract's error body with ``status``."""
    body = {"error": reason or HTTPStatus(status).phrase, "message": message}
    return jsonify(body), status


def flatten(messages: object, prefix: str = "") -> list[str]:
    """marshmallow's nested messages as ``field: message`` lines."""
    if isinstance(messages, dict):
        lines: list[str] = []
        for field, inner in messages.items():
            name = field if field != "_schema" else ""
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

    def redis_down(exc: Exception):
        logger.warning("redis unavailable: %s", exc)
        return error_response(503, "redis unavailable")

    for exc_class in REDIS_DOWN:
        app.register_error_handler(exc_class, redis_down)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        logger.exception("unhandled error")
        return error_response(500, "internal error")
