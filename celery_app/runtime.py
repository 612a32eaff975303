"""Per-process access to Redis and the store, safe across the worker's forks.

A Celery app carries one :class:`Runtime`; clients are created on first use in each process
(pool children are forked at any time, and sockets must not cross a fork).
"""

from __future__ import annotations

import os
import threading

import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from .messages import MessageBuilder
from .settings import Settings
from .store import Store


def redis_client(settings: Settings, socket_timeout: float | None = None) -> redis.Redis:
    """A client that fails fast (so a dead Redis is a 503 within 2 s) and reconnects by itself.

    ``socket_timeout`` overrides the read timeout, for blocking reads.
    """
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=socket_timeout or settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_socket_timeout_seconds,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


class Runtime:
    """Settings plus lazily created, per-process Redis client and store."""

    def __init__(self, celery: Celery, settings: Settings) -> None:
        self.celery = celery
        self.settings = settings
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._redis: redis.Redis | None = None
        self._store: Store | None = None

    def _ensure(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                client = redis_client(self.settings)
                builder = MessageBuilder(self.celery, self.settings.hard_timeout_grace_seconds)
                self._redis, self._store = client, Store(client, self.settings, builder)
                self._pid = os.getpid()

    @property
    def redis(self) -> redis.Redis:
        """This process's Redis client."""
        self._ensure()
        assert self._redis is not None
        return self._redis

    @property
    def store(self) -> Store:
        """This process's envelope store."""
        self._ensure()
        assert self._store is not None
        return self._store
