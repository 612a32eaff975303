"""What the store's Lua scripts count for ``/metrics`` (``lua/lib.lua`` writes them).

========================  ==========================================  =========================
hash                      field → value                               written by
========================  ==========================================  =========================
``tq:metrics:submitted``  ``type\\tpriority`` → n                      submit
``tq:metrics:executions`` ``type\\tending\\tbucket`` → n                 finish (worker)
``tq:metrics:duration``   ``type\\tsum`` → seconds                      finish (worker)
``tq:metrics:completed``  ``type\\tstatus`` → n                         cancel, PATCH
========================  ==========================================  =========================

An execution's ``ending`` is ``completed``, ``retrying`` or ``dead_letter``; its ``bucket`` the
index of :data:`DURATION_BUCKETS` it falls in (``len + 1`` = +Inf). One ``HINCRBY`` per
execution thus feeds both the outcome counter and the histogram; :func:`read_counters` folds
them back into the three series ``/metrics`` exposes. Labels are bounded: types are registered
handlers, priorities and statuses fixed sets — never ids.
"""

from __future__ import annotations

from collections import Counter

import redis

from . import keys

#: Upper bounds (seconds) of the execution-time histogram; ``lua/lib.lua`` has the same list.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
#: Execution endings that are final outcomes (``taskqueue_tasks_completed_total``).
FINAL_ENDINGS = ("completed", "dead_letter")
_HASHES = ("submitted", "executions", "duration", "completed")


def read_counters(client: redis.Redis) -> dict[str, dict[str, str]]:
    """The counters in one round trip, as ``/metrics`` exposes them.

    ``submitted``: ``type\\tpriority`` → n; ``completed``: ``type\\tstatus`` → n;
    ``duration``: ``type\\t<bucket index>`` → n and ``type\\tsum`` → seconds.
    """
    pipe = client.pipeline(transaction=False)
    for name in _HASHES:
        pipe.hgetall(keys.metrics(name))
    submitted, executions, duration_sums, completed = pipe.execute()
    outcomes: Counter[str] = Counter({k: int(v) for k, v in completed.items()})
    buckets: Counter[str] = Counter()
    for field, count in executions.items():
        task_type, ending, bucket = field.split("\t")
        buckets[f"{task_type}\t{bucket}"] += int(count)
        if ending in FINAL_ENDINGS:
            outcomes[f"{task_type}\t{ending}"] += int(count)
    duration = {field: str(count) for field, count in buckets.items()}
    duration.update(duration_sums)
    return {
        "submitted": submitted,
        "completed": {field: str(count) for field, count in outcomes.items()},
        "duration": duration,
    }
