"""Per-process access to Redis and the nouns built on it, safe across the worker's forks.

A Celery app carries one :class:`Runtime`; clients are created on first use in each process
(pool children are forked at any time, and sockets must not cross a fork), always through
:func:`celery_app.connection.redis_client` (one Redis, or the master Sentinel names).
Everything outside ``celery_app`` reaches Redis through these nouns: :attr:`Runtime.store`
(tasks and their transitions), :attr:`Runtime.dead_letters`, :attr:`Runtime.listing`,
:attr:`Runtime.workers`.
"""

from __future__ import annotations

import os
import threading

import redis
from celery import Celery

from . import keys
from .audit import AuditLog
from .connection import redis_client
from .dlq import DeadLetters
from .lease import Leases
from .limits import Limits
from .listing import Listing
from .messages import MessageBuilder
from .scripts import Scripts
from .settings import Settings
from .store import Store
from .workers import Workers

#: The health probe's key outlives one probe by this much (a probe every few seconds).
HEALTH_PROBE_TTL_MS = 10_000


class Runtime:
    """Settings plus lazily created, per-process Redis client and store."""

    def __init__(self, celery: Celery, settings: Settings) -> None:
        self.celery = celery
        self.settings = settings
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._redis: redis.Redis | None = None
        self._store: Store | None = None
        self._nouns: tuple[DeadLetters, Listing, Workers] | None = None
        self._leases: Leases | None = None

    def _ensure(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                settings = self.settings
                client = redis_client(settings)
                wait_client = None
                if settings.redis_min_replicas:  # a read timeout that outlasts WAIT's
                    wait_timeout = settings.redis_wait_timeout_ms / 1000
                    wait_client = redis_client(
                        settings, settings.redis_socket_timeout_seconds + wait_timeout)
                builder = MessageBuilder(self.celery, settings.hard_timeout_grace_seconds)
                scripts = Scripts(client, settings.events_maxlen)
                store = Store(client, settings, builder, scripts, wait_client)
                self._redis, self._store = client, store
                self._nouns = (DeadLetters(store), Listing(store), Workers(client, scripts))
                self._leases = Leases(client, ttl_seconds=settings.lease_seconds,
                                      interval_seconds=settings.worker_heartbeat_seconds)
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

    @property
    def scripts(self) -> Scripts:
        """This process's script runner."""
        return self.store.scripts

    @property
    def leases(self) -> Leases:
        """The leases of the executions running in this process (renewed by one thread)."""
        self._ensure()
        assert self._leases is not None
        return self._leases

    @property
    def dead_letters(self) -> DeadLetters:
        """This process's dead-letter queue."""
        self._ensure()
        assert self._nouns is not None
        return self._nouns[0]

    @property
    def listing(self) -> Listing:
        """Pages, statistics and queue depths."""
        self._ensure()
        assert self._nouns is not None
        return self._nouns[1]

    @property
    def audit_log(self) -> AuditLog:
        """The audit log (entries are written by the changes themselves)."""
        return AuditLog(self.redis)

    @property
    def limits(self) -> Limits:
        """Limits per task type (enforced by the claim script)."""
        return Limits(self.redis, self.scripts)

    @property
    def workers(self) -> Workers:
        """The worker registry and pause flags."""
        self._ensure()
        assert self._nouns is not None
        return self._nouns[2]

    def ping(self) -> bool:
        """Whether Redis answers (raises redis-py's connection errors when it does not)."""
        return bool(self.redis.ping())

    def probe_writes(self) -> None:
        """Write ``tq:health`` (expiring in 10 s): raises the error a write meets right now —
        ``OutOfMemoryError``, ``ReadOnlyError``, ``MISCONF``, ``BUSY``, ``LOADING`` — which a
        ``PING`` does not show."""
        self.redis.set(keys.health(), "1", px=HEALTH_PROBE_TTL_MS)
