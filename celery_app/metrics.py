"""What the store's Lua scripts count for ``/metrics`` (``lua/lib.lua`` writes them).

``tq:metrics:submitted`` (``type\\tpriority`` → n), ``tq:metrics:completed``
(``type\\tstatus`` → n; status ``completed``, ``dead_letter``, ``failed`` or ``cancelled``) and
``tq:metrics:duration`` (``type\\t<bucket index>`` → n, ``type\\tsum`` → seconds). Labels are
bounded: types are registered handlers, priorities and statuses fixed sets — never ids.
"""

from __future__ import annotations

import redis

from . import keys

#: Upper bounds (seconds) of the execution-time histogram; ``lua/lib.lua`` has the same list.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
                    3600)

#: The counter hashes the scripts write, by name (``tq:metrics:<name>``).
COUNTERS = ("submitted", "completed", "duration")


def read_counters(client: redis.Redis) -> dict[str, dict[str, str]]:
    """Every counter hash (field → count as text), by name, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for name in COUNTERS:
        pipe.hgetall(keys.metrics(name))
    return dict(zip(COUNTERS, pipe.execute(), strict=True))
