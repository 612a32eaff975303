"""Every Redis connection of the service is described here, for one Redis or for Redis Sentinel.

=======================================================  ==========================================
Redis user                                               built by
=======================================================  ==========================================
envelope store and its Lua scripts, worker registry,     :func:`redis_client`
heartbeat, maintenance, web reads
event reader behind ``/ws`` and long polls (``XREAD``)   :func:`redis_client` (longer read timeout)
kombu's broker (publish, ``BRPOP``, ``unacked``)         :func:`broker_url`,
                                                         :func:`broker_transport`,
                                                         :func:`broker_transport_options`
Celery's result backend (:mod:`celery_app.backend`)      :func:`redis_client` (it reads envelopes)
=======================================================  ==========================================

**One Redis** (``REDIS_URL``): plain ``redis://`` clients and URLs.

**Sentinel** (``REDIS_SENTINELS`` + ``REDIS_SENTINEL_MASTER``; ``REDIS_URL`` then supplies only
the database number and password): redis-py's :class:`~redis.sentinel.Sentinel` and kombu's
``sentinel://`` transport. Each new connection asks the sentinels for the current master,
so every process follows a failover by itself:

- a connection to the dead master fails (``ConnectionError``), is dropped, and the next one asks
  the sentinels again; while none is promoted, ``MasterNotFoundError`` (a ``ConnectionError``)
  answers at once — a 503 in the web process, a retry on the next tick in the worker;
- a connection to a demoted master gets ``READONLY``, which redis-py turns into a reconnect;
- Lua scripts are unknown to the new master (``NOSCRIPT``): redis-py's ``Script`` loads them again
  on first use, and :mod:`celery_app.replication` does the same for its pipelined calls;
- kombu's consumer reconnects through the sentinels (``broker_connection_retry``).

Sentinels themselves are reached without a password (``sentinel_kwargs``), the data nodes with
the one in ``REDIS_URL``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from .settings import Settings

T = TypeVar("T")

#: Errors that mean "Redis is not reachable right now" (a failover, a restart, a partition).
UNREACHABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
)


def redis_client(settings: Settings, socket_timeout: float | None = None) -> redis.Redis:
    """A client of the current master that fails fast (a dead Redis is a 503 within 2 s) and
    reconnects by itself — to a new master after a Sentinel failover.

    ``socket_timeout`` overrides the read timeout (seconds), for blocking reads.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": socket_timeout or settings.redis_socket_timeout_seconds,
        "socket_connect_timeout": settings.redis_socket_timeout_seconds,
        "retry": Retry(NoBackoff(), 1),
        "health_check_interval": 30,
    }
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url, **options)
    url = parse_url(settings.redis_url)
    for name in ("db", "username", "password"):
        if url.get(name) is not None:
            options[name] = url[name]
    timeout = settings.redis_socket_timeout_seconds
    sentinel = Sentinel(
        settings.sentinel_addresses,
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
        **options,
    )
    return sentinel.master_for(settings.redis_sentinel_master, redis_class=redis.Redis)


def _sentinel_url(settings: Settings) -> str:
    """kombu's and Celery's form: ``sentinel://[:password@]host:port/db;sentinel://…``."""
    url = parse_url(settings.redis_url)
    auth = f":{quote(url['password'], safe='')}@" if url.get("password") else ""
    db = url.get("db", 0)
    return ";".join(
        f"sentinel://{auth}{f'[{host}]' if ':' in host else host}:{port}/{db}"
        for host, port in settings.sentinel_addresses
    )


def _sentinel_options(settings: Settings) -> dict[str, Any]:
    if not settings.redis_sentinels:
        return {}
    timeout = settings.redis_socket_timeout_seconds
    return {
        "master_name": settings.redis_sentinel_master,
        "sentinel_kwargs": {"socket_timeout": timeout, "socket_connect_timeout": timeout},
    }


def broker_url(settings: Settings) -> str:
    """Celery's ``broker_url``."""
    return _sentinel_url(settings) if settings.redis_sentinels else settings.redis_url


def broker_transport(settings: Settings) -> str:
    """Celery's ``broker_transport``: kombu's Redis or Sentinel transport, made to survive the
    loss of Redis while a message is held (:mod:`celery_app.transport`)."""
    name = "SentinelTransport" if settings.redis_sentinels else "Transport"
    return f"celery_app.transport:{name}"


def broker_transport_options(settings: Settings, **options: Any) -> dict[str, Any]:
    """``options`` plus, with Sentinel, the master's name and the sentinels' timeouts."""
    return {**options, **_sentinel_options(settings)}


def ride_out(call: Callable[[], T], seconds: float, interval: float = 0.25) -> T:
    """``call()``, tried again while Redis is unreachable, for up to ``seconds`` in all.

    For writes that must land although Redis is away for a moment (a failover, a restart): the
    outcome of an execution that already ran. ``call`` must be safe to repeat — the store's
    transitions are (a repeat of an applied one is refused as stale). Raises the last error
    when the time is up.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except UNREACHABLE:
            if time.monotonic() + interval > deadline:
                raise
            time.sleep(interval)
