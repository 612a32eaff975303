"""A task's lease, kept alive by the process that executes the task.

The claim script takes the task's lease: the envelope's ``lease`` field names the execution's
delivery token and ``lease_until`` says when it lapses (ms on Redis's clock, now +
:attr:`~celery_app.settings.Settings.lease_seconds`, three heartbeat intervals), both written by
the claim's own ``HSET`` (:mod:`celery_app.keys`). While the
handler runs, a daemon thread of the **pool child** (one per process, :class:`Leases`) renews it
every ``WORKER_HEARTBEAT_SECONDS``, and only while the lease still names this execution's
delivery.
The worker's main process takes no part, so:

- a main process that stalls (SIGSTOP, a long GC pause, a blocked event loop) while its child
  runs does not lose the lease: nobody else starts the task;
- a Redis that is away longer than the TTL (a failover, a restart) does not lose it either: the
  next renewal takes it again while the task is still running under this execution's delivery,
  and the reaper waits for that after an outage (:mod:`celery_app.maintenance`);
- a child that dies stops renewing: the lease expires, and the reaper
  (:mod:`celery_app.maintenance`) queues the task again;
- the script that records the end of an execution (``finish.lua``) releases the lease in the
  same step (``lease_until`` = 0), so ``POST …/retry`` is refused (409) exactly while an
  execution still holds it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from . import keys

logger = logging.getLogger(__name__)

#: Extend the lease only while it still names this execution (KEYS[1] the task's envelope,
#: ARGV[1] delivery, ARGV[2] TTL ms; the new ``lease_until`` is Redis's ``TIME`` + TTL). A lease
#: that lapsed while Redis was away (an outage longer than its TTL, a Sentinel failover) is
#: taken again while it still names this execution — whatever the task's state, since a PATCH
#: may have made it final under the running handler: only a claim rewrites ``lease``, and a
#: claim refuses to start while a lease is held. With no lease naming it (a failover to a replica
#: that had not received the claim), it is taken if the task is still running under this
#: execution's delivery: nobody else can have started it. Returns 1 when renewed, 0 when the
#: lease is someone else's or the task no longer this execution's (or gone).
#: ``allow-oom`` (Redis 7 script flags): rewriting a number in place takes no memory to speak of,
#: and an execution that still runs must keep its lease while Redis refuses writes at
#: ``maxmemory`` — else the task would be queued again under a live handler as soon as memory is
#: back. Redis 6.2 knows no flags (the ``#!`` line is a syntax error there): it gets the same
#: body without them, and there a renewal is refused at ``maxmemory`` like any write.
_RENEW = """#!lua flags=allow-oom
local task = redis.call('HMGET', KEYS[1], 'lease', 'lease_until', 'state', 'delivery')
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local held = tonumber(task[2] or '0') > now
if task[1] ~= ARGV[1] then
  if held or task[3] ~= 'running' or task[4] ~= ARGV[1] then return 0 end
end
redis.call('HSET', KEYS[1], 'lease', ARGV[1], 'lease_until', string.format('%.0f', now + ARGV[2]))
return 1
"""


class Leases:
    """The leases of the executions running in this process, renewed by one daemon thread.

    :meth:`hold` registers an execution for the time its handler runs (a context manager: a
    dict entry, no thread per task); every ``interval_seconds`` the thread renews each
    registered lease for ``ttl_seconds`` (several renewals fit in one TTL, so one slow Redis
    answer loses nothing), so a lease is renewed at most one interval after it was taken or
    last renewed. A failed renewal is logged and tried again at the next interval; a lease found
    lost (someone else's, or the task no longer this execution's) is logged and dropped.
    One per process (:class:`~celery_app.runtime.Runtime` makes it after each fork); the thread
    starts with the first execution.
    """

    def __init__(
        self, client: redis.Redis, *, ttl_seconds: float, interval_seconds: float
    ) -> None:
        self.ttl_ms = int(ttl_seconds * 1000)
        self.interval = interval_seconds
        self._renew = client.register_script(_RENEW)
        self._renew_without_flags = client.register_script(_RENEW.split("\n", 1)[1])
        self._held: dict[str, str] = {}  # envelope key → delivery
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def hold(self, task_id: str, delivery: str) -> Iterator[None]:
        """Renew the lease of ``task_id``'s execution ``delivery`` until the block ends (the
        lease itself is released by the script recording the outcome)."""
        key = keys.task(task_id)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lease renewer",
                                                daemon=True)
                self._thread.start()
            self._held[key] = delivery
        try:
            yield
        finally:
            with self._lock:
                if self._held.get(key) == delivery:
                    del self._held[key]

    def held(self) -> dict[str, str]:
        """The leases being renewed now: envelope key → delivery."""
        with self._lock:
            return dict(self._held)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            for key, delivery in self.held().items():
                self._renew_one(key, delivery)

    def _renew_one(self, key: str, delivery: str) -> None:
        try:
            try:
                kept = self._renew(keys=[key], args=[delivery, self.ttl_ms])
            except redis.ResponseError as exc:
                if "Error compiling script" not in str(exc):
                    raise
                logger.info("this Redis takes no script flags (before 7.0): renewing leases "
                            "without allow-oom")
                self._renew = self._renew_without_flags
                kept = self._renew(keys=[key], args=[delivery, self.ttl_ms])
        except Exception:  # Redis unreachable: the next interval tries again
            logger.warning("could not renew the lease of %s", key, exc_info=True)
            return
        if not kept:
            logger.warning("lease of %s lost: the task may run elsewhere", key)
            with self._lock:
                if self._held.get(key) == delivery:
                    del self._held[key]
