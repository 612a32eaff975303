"""Acknowledged writes: store script calls that answer only once replicas hold them.

With ``REDIS_MIN_REPLICAS`` = n > 0, a submit's script calls and a Redis ``WAIT n timeout`` go in
one pipeline — one round trip, however many calls (a batch reuses :func:`acknowledged`). ``WAIT``
returns the number of replicas that acknowledged every write made so far on that connection;
fewer than n within ``REDIS_WAIT_TIMEOUT_MS`` raises :class:`NotReplicated` (HTTP 503).

What a 503 means for the caller: the task may exist and may run (the master has it), but it is
not known to survive the master's loss. Retrying with the same ``Idempotency-Key`` is safe: the
submit script finds the key and answers with the first task — after rewriting the key, so this
retry's ``WAIT`` covers the first call's writes too (201/200 only once replicas hold it). If the
master died before replicating the first call, the key died with it and the retry creates the
task anew. A retry without the key may create a second task.

Scripts are run by SHA (``EVALSHA``); a master that does not know them (a new one after a
failover: the script cache is not replicated) answers ``NOSCRIPT``, and those calls alone are
loaded and sent again.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from .errors import TaskqueueError
from .settings import Settings


class NotReplicated(TaskqueueError):
    """Fewer replicas than ``REDIS_MIN_REPLICAS`` acknowledged a write in time (HTTP 503)."""

    status = 503

    def __init__(self, acknowledged: int, settings: Settings) -> None:
        super().__init__(
            f"write acknowledged by {acknowledged} of {settings.redis_min_replicas} required "
            f"replicas within {settings.redis_wait_timeout_ms} ms; retry with the same "
            "Idempotency-Key"
        )
        self.acknowledged = acknowledged


ScriptCall = tuple[Script, list[str], list[Any]]


def acknowledged(client: redis.Redis, settings: Settings, calls: list[ScriptCall]) -> list[Any]:
    """Run ``calls`` (script, keys, args) then ``WAIT`` in one round trip; their replies in order.

    Raises :class:`NotReplicated` when fewer than ``settings.redis_min_replicas`` replicas
    acknowledged within ``settings.redis_wait_timeout_ms``, and the first error a call returned
    (other than ``NOSCRIPT``, which is handled by loading the script and sending that call again).
    The client's read timeout must exceed the wait (see :class:`celery_app.runtime.Runtime`).
    """
    replies: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    for _ in range(2):  # a second pass only for calls the master did not know the script of
        pipe = client.pipeline(transaction=False)
        for i in pending:
            script, keys, args = calls[i]
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        pipe.execute_command("WAIT", settings.redis_min_replicas, settings.redis_wait_timeout_ms)
        *answers, count = pipe.execute(raise_on_error=False)
        unknown = []
        for i, answer in zip(pending, answers, strict=True):
            if isinstance(answer, NoScriptError):
                unknown.append(i)
            elif isinstance(answer, Exception):
                raise answer
            else:
                replies[i] = answer
        if isinstance(count, Exception):
            raise count
        if not unknown:
            if int(count) < settings.redis_min_replicas:
                raise NotReplicated(int(count), settings)
            return replies
        for script in {calls[i][0].sha: calls[i][0] for i in unknown}.values():
            client.script_load(script.script)
        pending = unknown
    raise NoScriptError("scripts vanished while loading them")
