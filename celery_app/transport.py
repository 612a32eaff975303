"""kombu's Redis and Sentinel transports, surviving the loss of Redis while a message is held.

When Redis goes away (a Sentinel failover, a restart) while the worker holds a delivered message,
Celery 5.7's consumer first ``collect()``-s the broken connection — which detaches the transport
from its kombu ``Connection`` — then closes it. Closing the channel tries to restore the held
messages (``restore_unacked_once``) through a new connection pool, whose parameters are read from
that detached connection: ``AttributeError: 'NoneType' object has no attribute 'hostname'``. That
is not a connection error, so Celery treats it as unrecoverable and the worker shuts down.

Here the detached case is a connection error (which the close path ignores): the worker
reconnects and carries on. The held messages stay in kombu's ``unacked`` hash, as they would
after a crash; the task itself is run by the execution that holds it (its claim and outcome ride
out the outage, :mod:`celery_app.task`), and a stale copy is skipped at claim.

Selected through Celery's ``broker_transport`` (an explicit import path; the URL only names the
hosts), in :func:`celery_app.config.celery_config`.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class _Detached:
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # type: ignore[attr-defined]
            raise RedisConnectionError("broker connection already closed")
        return super()._connparams(asynchronous)  # type: ignore[misc]


class Channel(_Detached, kombu_redis.Channel):
    """kombu's Redis channel; see the module docstring."""


class Transport(kombu_redis.Transport):
    """kombu's Redis transport (``redis://``) with :class:`Channel`."""

    Channel = Channel


class SentinelChannel(_Detached, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel; see the module docstring."""


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport (``sentinel://…;sentinel://…``) with :class:`SentinelChannel`."""

    Channel = SentinelChannel
