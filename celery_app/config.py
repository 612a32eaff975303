"""Celery configuration derived from :class:`~celery_app.settings.Settings`.

Why each non-default value (measured facts in the project's notes on Celery 5.7 / kombu 5.7):

- ``queue_order_strategy=priority``: a worker reads its ``-Q`` queues strictly in the given order
  (kombu ≥ 5.7). Priority is the queue; Celery's per-message ``priority`` is never used.
- Queues on the default exchange with ``routing_key=name``: a publish is one ``LPUSH`` onto the
  queue's list, no binding lookup, never copied into other queues.
- ``acks_late`` + prefetch 1 (``worker_disable_prefetch``): a worker holds only the message it is
  running, so a ``critical`` task never waits behind prefetched ``low`` ones, and a message is
  only acknowledged once its execution ended.
- ``result_backend``: :class:`~celery_app.backend.EnvelopeBackend` answers ``AsyncResult`` from
  the envelope, which already holds every result; Celery keeps no second copy.
- ``visibility_timeout`` above the longest hard time limit: Celery never redelivers a task that
  is still running. Lost workers are found by heartbeat, long before that.
- The broker URL and its Sentinel options come from :mod:`celery_app.connection`, like every
  other Redis client of the service.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from . import connection
from .model import QUEUES
from .settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings of this service."""
    transport = connection.broker_transport_options(
        settings,
        queue_order_strategy="priority",
        visibility_timeout=settings.visibility_timeout_seconds,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    default_exchange = Exchange("", type="direct")
    return {
        "broker_url": connection.broker_url(settings),
        "broker_transport": connection.broker_transport(settings),
        "result_backend": "celery_app.backend:EnvelopeBackend",
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_queues": [Queue(q, default_exchange, routing_key=q) for q in QUEUES],
        "task_default_queue": "low",
        "task_default_exchange": "",
        "task_default_routing_key": "low",
        "task_create_missing_queues": False,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_acks_on_failure_or_timeout": True,
        "task_reject_on_worker_lost": False,
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,
        "result_expires": settings.task_retention_seconds,
        "enable_utc": True,
        "timezone": "UTC",
    }
