"""What the store's Lua scripts count for ``/metrics`` (``lua/lib.lua`` writes them).

========================  ==========================================  =========================
hash                      field → value                               written by
========================  ==========================================  =========================
``tq:metrics:submitted``  ``type\\tpriority`` → n                      submit
``tq:metrics:executions`` ``type\\tending\\tbucket`` → n                 fold (events)
``tq:metrics:duration``   ``type\\tsum`` → seconds                      fold (events)
``tq:metrics:completed``  ``type\\tstatus`` → n                         cancel, PATCH
``tq:metrics:queue_wait`` ``type\\tpriority\\tbucket`` → n,            fold (events)
                          ``type\\tpriority\\tsum`` → seconds
``tq:metrics:webhooks``   webhook outcome → n                         webhook_record
``tq:metrics:cursor``     (string) the last event folded               fold
========================  ==========================================  =========================

Nothing is counted per execution by the worker's transitions: their events (``task.started``
with ``queue_wait_ms``, ``task.completed`` and ``task.failed`` with ``duration_ms``) are folded
into the counters in batches by :func:`fold_events` — at every scrape and statistics request
(so what is read is exact) and on the maintenance tick (so the stream's cap never drops an
unfolded event in practice).

An execution's ``ending`` is ``completed``, ``retrying`` or ``dead_letter``; its ``bucket`` the
index of :data:`DURATION_BUCKETS` it falls in (``len + 1`` = +Inf). One count per (type,
ending, bucket) thus feeds both the outcome counter and the histogram; :func:`read_counters` folds
them back into the series ``/metrics`` exposes — executions that ended ``retrying`` are the
retries. The queue wait is the time from being queued (submit, due-time release, requeue; the
task's ``queued_ms``) to the claim, on Redis's clock, with :data:`WAIT_BUCKETS`. Labels are
bounded: types are registered handlers, priorities and statuses fixed sets — never ids.

The age of the oldest message waiting in each queue is read at scrape time
(:func:`oldest_waiting_seconds`): the message at the list's tail (kombu pops there) names its
task, whose ``queued_ms`` says since when it waits.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import redis

from . import keys, model

#: Upper bounds (seconds) of the execution-time histogram; ``lua/lib.lua`` has the same list.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
#: Execution endings that are final outcomes (``taskqueue_tasks_completed_total``).
FINAL_ENDINGS = ("completed", "dead_letter")
#: Upper bounds (seconds) of the queue-wait histogram; ``lua/lib.lua`` has the same list.
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600)
_HASHES = ("submitted", "executions", "duration", "completed", "queue_wait", "webhooks",
           "throttled")


#: Events folded per script call (bounds how long one call blocks Redis).
FOLD_BATCH = 1000


def fold_events(scripts: Any) -> int:
    """Fold every event appended since the last fold into the counters (``lua/fold_metrics.lua``,
    batches of :data:`FOLD_BATCH`); returns the events read. Called before counters are read,
    and by the maintenance tick, so counts are exact when read and never lag far."""
    total = 0
    while True:
        try:
            read = int(scripts.run("fold_metrics", [keys.events()], FOLD_BATCH))
        except redis.ResponseError:  # refusing writes (READONLY, OOM…): read what is folded
            return total
        total += read
        if read < FOLD_BATCH:
            return total


def read_counters(client: redis.Redis) -> dict[str, dict[str, str]]:
    """The counters in one round trip, as ``/metrics`` exposes them.

    ``submitted``: ``type\\tpriority`` → n; ``completed``: ``type\\tstatus`` → n;
    ``duration``: ``type\\t<bucket index>`` → n and ``type\\tsum`` → seconds; ``retries``:
    ``type`` → n; ``queue_wait``: ``type\\tpriority\\t<bucket index>`` → n and ``…\\tsum``;
    ``webhooks``: outcome → n; ``throttled``: ``type`` → tasks a limit held back.
    """
    pipe = client.pipeline(transaction=False)
    for name in _HASHES:
        pipe.hgetall(keys.metrics(name))
    submitted, executions, duration_sums, completed, queue_wait, webhooks, throttled = (
        pipe.execute())
    outcomes: Counter[str] = Counter({k: int(v) for k, v in completed.items()})
    buckets: Counter[str] = Counter()
    retries: Counter[str] = Counter()
    for field, count in executions.items():
        task_type, ending, bucket = field.split("\t")
        buckets[f"{task_type}\t{bucket}"] += int(count)
        if ending in FINAL_ENDINGS:
            outcomes[f"{task_type}\t{ending}"] += int(count)
        elif ending == "retrying":
            retries[task_type] += int(count)
    duration = {field: str(count) for field, count in buckets.items()}
    duration.update(duration_sums)
    return {
        "submitted": submitted,
        "completed": {field: str(count) for field, count in outcomes.items()},
        "duration": duration,
        "retries": {task_type: str(count) for task_type, count in retries.items()},
        "queue_wait": queue_wait,
        "webhooks": webhooks,
        "throttled": throttled,
    }


def oldest_waiting_seconds(client: redis.Redis) -> dict[str, float]:
    """Per queue, how long its oldest waiting message has waited (0 when empty), on Redis's
    clock — two round trips whatever the queue lengths."""
    pipe = client.pipeline(transaction=False)
    pipe.time()
    for queue in model.QUEUES:
        pipe.lindex(queue, -1)
    (seconds, micros), *tails = pipe.execute()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    ids = {queue: _task_id(raw) for queue, raw in zip(model.QUEUES, tails, strict=True) if raw}
    pipe = client.pipeline(transaction=False)
    for task_id in ids.values():
        pipe.hmget(keys.task(task_id), "queued_ms", "created_ms")
    since = {
        queue: queued or created
        for queue, (queued, created) in zip(ids, pipe.execute(), strict=True)
    }
    return {
        queue: max(0.0, (now_ms - int(since[queue])) / 1000) if since.get(queue) else 0.0
        for queue in model.QUEUES
    }


def _task_id(raw: str) -> str:
    """The task id in a kombu message's headers (``''`` when unreadable)."""
    try:
        return str(json.loads(raw)["headers"]["id"])
    except (ValueError, LookupError, TypeError):
        return ""
