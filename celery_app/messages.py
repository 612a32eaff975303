"""Celery messages built as bytes, so a store script can queue one in the same step as it
changes the envelope.

The message is Celery's protocol 2 (``app.amqp.as_task_v2``) inside the envelope kombu's Redis
transport pushes for a publish on the default exchange: exactly what ``apply_async(queue=q)``
would ``LPUSH`` onto list ``q`` (``tests/integration/test_messages.py`` pins that against a real
kombu publish). Building it ourselves turns "create the envelope, then publish" — two round trips
and a window where one happens without the other — into one atomic Lua call.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from typing import Any

from celery import Celery
from celery.utils.saferepr import saferepr
from kombu.serialization import dumps as kombu_dumps

from . import strictjson
from .defaults import hard_time_limit_seconds

#: Message header naming the delivery a message carries; the claim step compares it with the
#: envelope's, so only the live message of a task can run it.
DELIVERY_HEADER = "tq_delivery"


def new_delivery() -> str:
    """A fresh delivery token."""
    return uuid.uuid4().hex


_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})


def _plain_text(text: str) -> bool:
    """``repr(text)`` is the text between single quotes, as ``saferepr`` writes it."""
    return "'" not in text and "\\" not in text and text.isprintable()


def plain_kwargsrepr(kwargs: Any, maxsize: int) -> str | None:
    """Celery's ``kwargsrepr`` header (``saferepr(kwargs, maxsize)``) computed with ``repr``
    when that gives the same text: a flat dict of plain strings (printable, no quote or
    backslash) and numbers, booleans or ``None``, shorter than ``maxsize`` (nothing cut).
    ``None`` when not, for the caller to use ``saferepr``."""
    if type(kwargs) is not dict:
        return None
    for key, value in kwargs.items():
        if type(key) is not str or not _plain_text(key):
            return None
        kind = type(value)
        if kind is str:
            if not _plain_text(value):
                return None
        elif kind not in _PLAIN_SCALARS:
            return None
    text = repr(kwargs)
    return text if len(text) < maxsize else None


class MessageBuilder:
    """Builds the kombu/Celery wire form of a task message for one Celery app."""

    def __init__(self, celery: Celery, hard_timeout_grace_seconds: int) -> None:
        self._amqp = celery.amqp
        self._grace = hard_timeout_grace_seconds
        self._origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self._kwargsrepr_maxsize = self._amqp.kwargsrepr_maxsize
        self._argsrepr = saferepr((), self._amqp.argsrepr_maxsize)  # "()": no arguments

    def build(
        self,
        *,
        task_id: str,
        name: str,
        kwargs: dict[str, Any],
        queue: str,
        delivery: str,
        timeout: int,
    ) -> str:
        """The JSON text to ``LPUSH`` onto list ``queue``.

        ``timeout`` becomes the soft time limit (the handler sees ``SoftTimeLimitExceeded``); the
        hard limit, which kills the pool child, follows ``hard_timeout_grace_seconds`` later.
        """
        headers, properties, body, _ = self._amqp.as_task_v2(
            task_id,
            name,
            kwargs=kwargs,
            soft_time_limit=timeout,
            time_limit=hard_time_limit_seconds(timeout, self._grace),
            origin=self._origin,
            ignore_result=None,  # as send_task: the task's own setting decides
            argsrepr=self._argsrepr,
            kwargsrepr=plain_kwargsrepr(kwargs, self._kwargsrepr_maxsize),  # None: saferepr
        )
        headers[DELIVERY_HEADER] = delivery
        content_type, content_encoding, data = kombu_dumps(body, serializer="json")
        if isinstance(data, str):
            data = data.encode(content_encoding)
        properties.update(
            delivery_mode=2,
            delivery_info={"exchange": "", "routing_key": queue},
            priority=0,
            body_encoding="base64",
            delivery_tag=str(uuid.uuid4()),
        )
        message = {
            "body": base64.b64encode(data).decode("ascii"),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": headers,
            "properties": properties,
        }
        return strictjson.dumps(message, ensure_ascii=True)
