"""Limits per task type, cluster-wide: a start rate and a concurrency cap (API.md §5).

Celery's ``rate_limit`` is per worker process and it has no concurrency cap per task name;
these hold across every worker and process because the claim script (``lua/claim.lua``)
enforces them in the same atomic step that starts a task:

- **rate** ``N/s``, ``N/m`` or ``N/h``: at most N starts of the type in any sliding window of
  one second (minute, hour) — no burst above N. ``tq:limit:rate:<type>`` logs each start
  (score = Redis time in ms) and is trimmed to the window at every claim; a claim that would
  make N+1 starts inside the window waits until the oldest start of the window leaves it.
- **concurrency** ``n``: at most n executions at once. ``tq:limit:running:<type>`` maps each
  execution holding a slot to its delivery; a slot counts only while the task's lease
  (:mod:`celery_app.lease`, renewed by the executing pool child) still names that delivery, so
  the end of an execution frees it at once and a lost worker's slot frees when its lease
  expires (three heartbeat intervals) — nothing can leak.

A task over a limit is not started and holds no worker process: the claim answers
``throttle`` with the time it may be tried again, and ``lua/throttle.lua`` parks a new message
in ``tq:delayed`` until then (the promoter releases it). The task stays ``pending`` with
``throttled_until``, uses no attempt and no retry; other types keep running meanwhile. A task
held back by a concurrency cap is tried again every :data:`CONCURRENCY_RECHECK_MS`, and any
parked task at least every :data:`MAX_PARK_MS`, so a limit raised or removed takes effect
within seconds for tasks already waiting.

Keys (:mod:`celery_app.keys`): the ``limit:<type>`` fields of ``tq:gates`` (JSON ``{"rate",
"concurrency", "rate_n", "rate_ms"}``, read by the claim with the pause flags in one ``HMGET``),
``tq:limit:rate:<type>``, ``tq:limit:running:<type>``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import redis

from . import keys
from .audit import Audit
from .scripts import Scripts

#: ``N/s``, ``N/m``, ``N/h`` with 1 <= N <= 1,000,000.
RATE_PATTERN = r"^[1-9][0-9]{0,5}/[smh]$"
#: The window of each rate unit, in milliseconds.
WINDOW_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000}
#: Largest concurrency cap accepted.
MAX_CONCURRENCY = 100_000
#: A task held back by a concurrency cap is tried again after this long (ms); ``claim.lua``.
CONCURRENCY_RECHECK_MS = 500
#: A parked task is looked at again after at most this long (ms); ``throttle.lua``.
MAX_PARK_MS = 5000


def parse_rate(text: str) -> tuple[int, int]:
    """``"4/s"`` → ``(4, 1000)``: starts allowed and the window in ms; ``ValueError`` if not a
    rate of :data:`RATE_PATTERN`."""
    if not re.fullmatch(RATE_PATTERN, text):
        raise ValueError("must be N/s, N/m or N/h with 1 <= N <= 1000000")
    count, unit = text.split("/")
    return int(count), WINDOW_MS[unit]


class Limits:
    """The limits per task type, as the admin API reads and changes them."""

    def __init__(self, client: redis.Redis, scripts: Scripts) -> None:
        self.redis = client
        self.scripts = scripts

    def all(self) -> dict[str, dict[str, Any]]:
        """``{type: {"rate": "4/s" | None, "concurrency": n | None}}`` for every limited type."""
        prefix = keys.limit_gate("")
        stored = self.redis.hgetall(keys.gates())
        return {name.removeprefix(prefix): _public(raw) for name, raw in sorted(stored.items())
                if name.startswith(prefix)}

    def set(self, task_type: str, rate: str | None, concurrency: int | None,
            audit: Audit | None = None) -> dict[str, Any]:
        """Set (replace) the limits of ``task_type``; both ``None`` removes them. Returns what
        :meth:`all` shows for it. Written with its audit entry in one ``MULTI``."""
        limit: dict[str, Any] = {}
        if concurrency is not None:
            limit["concurrency"] = concurrency
        if rate is not None:
            limit["rate"] = rate
            limit["rate_n"], limit["rate_ms"] = parse_rate(rate)
        pipe = self.redis.pipeline(transaction=True)
        if rate is None and concurrency is None:
            pipe.hdel(keys.gates(), keys.limit_gate(task_type))
        else:
            pipe.hset(keys.gates(), keys.limit_gate(task_type), json.dumps(limit))
        if audit is not None:
            audit.add(pipe, self.scripts)
        pipe.execute()
        return {"type": task_type, "rate": rate, "concurrency": concurrency}

    def delete(self, task_type: str, audit: Audit | None = None) -> bool:
        """Remove the limits of ``task_type``; whether it had any. Audited in the same ``MULTI``."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(keys.gates(), keys.limit_gate(task_type))
        if audit is not None:
            audit.add(pipe, self.scripts)
        return bool(pipe.execute()[0])


def _public(raw: str) -> dict[str, Any]:
    limit = json.loads(raw)
    return {"rate": limit.get("rate"), "concurrency": limit.get("concurrency")}
