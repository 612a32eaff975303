"""The Redis key schema: every key this service writes is built here and nowhere else.

Celery's own keys (queue lists ``critical``/``high``/``normal``/``low``, ``unacked*``, ``_kombu.*``,
``celery-task-meta-*``) are Celery's; ours all start with ``tq:`` and never reuse those names.

=============================  ======  ======  ===========================  =====================
key                            type    TTL     written by                   read by
=============================  ======  ======  ===========================  =====================
``tq:task:<id>``               hash    --      store scripts (web, worker)  GET/list, workers
``tq:idx:<sort>:<scope>``      zset    --      store scripts                list
``tq:idx:state``               zset    --      store scripts                list, statistics
``tq:types``                   set     --      submit script                list, retention sweep
``tq:delayed``                 zset    --      store scripts                promoter (worker)
``tq:delayed:msg``             hash    --      store scripts                promoter (worker)
``tq:events``                  stream  MAXLEN  store scripts, signals       WebSocket fan-out
``tq:dlq``                     stream  --      store scripts                admin DLQ API
``tq:idem:<key>``              string  24 h    submit script                submit script
``tq:purged:<id>``             string  7 d     purge script (cancelled)     claim script
``tq:idem-batch:<key>``        string  24 h    batch submit (web)           batch submit (web)
``tq:acked``                   string  --      batch submit (web)           nobody
``tq:stats``                   hash    --      store scripts                statistics
``tq:workers``                 zset    --      worker heartbeat             admin, reaper
``tq:worker:<hostname>``       hash    3 hb    worker heartbeat             admin, reaper
``tq:lock:<name>``             string  PX      lock holders (worker)        lock holders
``tq:gates``                   hash    --      pause and limits APIs (web)  workers, claim script
``tq:health``                  string  10 s    /admin/health (web)          nobody
``tq:limit:rate:<type>``       zset    window  claim script                 claim script
``tq:limit:running:<type>``    hash    --      claim script                 claim script
``tq:metrics:<name>``          hash    --      store scripts                /metrics collector
``tq:webhooks``                zset    --      final transitions, webhooks  webhook deliverers
``tq:webhook:<delivery>``      hash    --      final transitions, webhooks  webhook deliverers
``tq:audit``                   stream  MAXLEN  audited scripts / MULTIs     admin audit API
``tq:uploads:owner``           string  --      orphan reaper (worker)       orphan reaper (worker)
=============================  ======  ======  ===========================  =====================

Every time in a score or field (ms or ISO-8601) is on Redis's clock (``TIME``), never a host's.

Gates: ``tq:gates`` holds everything that may hold a task back when a worker claims it, so the
claim reads all of it with one ``HMGET``: ``worker:<hostname>`` (that worker is paused; value:
when), ``queue:<name>`` (that queue is paused; value: when) and ``limit:<type>`` (the limits of
that task type: JSON ``{"rate", "concurrency", "rate_n", "rate_ms"}``). A worker that starts
carries the hashes an earlier layout kept them in (``tq:paused``, ``tq:queues:paused``,
``tq:limits``) into it (``lua/upgrade.lua``).

Leases: a running execution's lease is two fields of its envelope, ``lease`` (the execution's
delivery token) and ``lease_until`` (ms on Redis's clock; ``0`` once released). It is held while
``lease_until`` is in the future: the claim writes both in the envelope's own ``HSET``, the
executing pool child extends ``lease_until`` (:mod:`celery_app.lease`), the outcome's ``HSET``
releases it — no key of its own to create, expire or delete per task.

Webhooks: ``tq:webhooks`` scores each pending delivery by when it is due (ms) — while a
worker delivers it, by when that worker's lease runs out; ``tq:webhook:<delivery>`` holds the
job (task id, event, URL, attempts, lease token, envelope snapshot). ``<delivery>`` is the
``X-Taskqueue-Delivery`` value, ``<final event id>:<task id>``.

Indexes: each task has six entries, and a transition moves two (one ``ZADD`` each).

==============================  ==============================================  ==============
zset                            score                                           changes
==============================  ==============================================  ==============
``tq:idx:created:all``          created ms                                      never
``tq:idx:priority:all``         priority × 10¹³ + created ms                    never
``tq:idx:created:type:<t>``     created ms                                      never
``tq:idx:priority:type:<t>``    priority × 10¹³ + created ms                    never
``tq:idx:state``                rank(state) × 2⁴⁶ + priority × 10¹³ + created   every transition
``tq:idx:updated:type:<t>``     rank(state) × 2⁴² + updated ms                  every transition
==============================  ==============================================  ==============

A state (:data:`STATE_RANK`, ordered so that each status's states are adjacent) is a contiguous
score range of the two compound indexes, and in ``tq:idx:state`` so is a state with one
priority: a filter is a range, a count a ``ZCOUNT``, and combined filters a merge of ranges
(``lua/list.lua``). Final tasks are aged for retention by their updated score (their last
transition). Every score stays below 2⁵³, exact in a double. Ties on a score order by id, so
pages are stable. The Lua scripts build the same names from :data:`PREFIX` (one Redis, not
Cluster — as for Celery's Redis transport).

``tq:idem:<key>`` holds ``<SHA-256 of the request>:<task id>``: a repeat of the key with another
request is refused (422) instead of answered with the first task.
"""

from __future__ import annotations

PREFIX = "tq:"
SORTS = ("created", "updated", "priority")
#: Position of each state in the compound indexes (``lua/lib.lua`` has the same table).
STATE_RANK = {"pending": 0, "scheduled": 1, "retrying": 2, "running": 3, "completed": 4,
              "failed": 5, "dead_letter": 6, "cancelled": 7}
#: Score width of one state in ``tq:idx:state`` (2⁴⁶) and in ``tq:idx:updated:type:<t>`` (2⁴²).
STATE_UNIT = 2**46
UPDATED_UNIT = 2**42
#: Suffixes of the lists kombu keeps prioritised messages in (never used here, but counted).
KOMBU_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def task(task_id: str) -> str:
    """The envelope hash of one task."""
    return f"{PREFIX}task:{task_id}"


def index(sort: str, filter_: str = "all") -> str:
    """One listing index by ``sort``; ``filter_`` is ``all`` or ``type:<type>``."""
    return f"{PREFIX}idx:{sort}:{filter_}"


def state_index() -> str:
    """Every task by state, priority and creation (compound score, see the table above)."""
    return f"{PREFIX}idx:state"


def updated_index(task_type: str) -> str:
    """Tasks of one type by state and last update (compound score)."""
    return index("updated", f"type:{task_type}")


def types() -> str:
    """Every task type that was ever stored (the per-type indexes to read)."""
    return f"{PREFIX}types"


def delayed() -> str:
    """Tasks waiting for a time (scheduled, retry backoff): score = due time in ms."""
    return f"{PREFIX}delayed"


def delayed_messages() -> str:
    """The Celery message each delayed task will be released with: id → ``delivery\\nmessage``."""
    return f"{PREFIX}delayed:msg"


def events() -> str:
    """The event stream (every transition, worker events)."""
    return f"{PREFIX}events"


def dlq() -> str:
    """The dead-letter stream."""
    return f"{PREFIX}dlq"


#: How long a purged cancelled task's tombstone outlives it (s): its message may still wait in
#: a queue (paused, or no worker), and must be skipped, not adopted, when it is delivered.
PURGED_TTL_SECONDS = 7 * 24 * 3600


def legacy_lease(task_id: str) -> str:
    """The lease key of the earlier layout (leases are envelope fields now): a task claimed by
    a worker of that layout has no ``lease_until``, and the reaper counts it as held while this
    key, renewed by that worker, lives — so a rolling upgrade re-runs nothing."""
    return f"{PREFIX}lease:{task_id}"


def purged(task_id: str) -> str:
    """The tombstone of a cancelled task that was purged (see :data:`PURGED_TTL_SECONDS`)."""
    return f"{PREFIX}purged:{task_id}"


def idempotency(key: str) -> str:
    """The task id a client's ``Idempotency-Key`` maps to."""
    return f"{PREFIX}idem:{key}"


def batch_idempotency(key: str) -> str:
    """The tasks a client's ``Idempotency-Key`` on ``POST /api/v1/tasks/batch`` maps to:
    JSON ``{"hash": <SHA-256 of the request>, "ids": [<task id>, …]}``."""
    return f"{PREFIX}idem-batch:{key}"


def gates() -> str:
    """What may hold a claim back: worker pauses, queue pauses and limits per task type, one
    hash (fields: :func:`worker_gate`, :func:`queue_gate`, :func:`limit_gate`)."""
    return f"{PREFIX}gates"


def worker_gate(hostname: str) -> str:
    """The field of :func:`gates` present while a worker is paused (value: when, ISO-8601)."""
    return f"worker:{hostname}"


def queue_gate(queue: str) -> str:
    """The field of :func:`gates` present while a queue is paused (value: when, ISO-8601)."""
    return f"queue:{queue}"


def limit_gate(task_type: str) -> str:
    """The field of :func:`gates` holding a task type's limits: JSON ``{"rate", "concurrency",
    "rate_n", "rate_ms"}``."""
    return f"limit:{task_type}"


def limit_rate(task_type: str) -> str:
    """Starts of one task type inside its rate window: member ``<id>:<attempt>``, score = ms."""
    return f"{PREFIX}limit:rate:{task_type}"


def limit_running(task_type: str) -> str:
    """Executions of one task type holding a concurrency slot: task id → delivery (a slot is
    held while that task's lease still names that delivery)."""
    return f"{PREFIX}limit:running:{task_type}"


def acked() -> str:
    """A counter a batch submit increments after its transaction, so that a ``WAIT`` on the
    acknowledging connection covers the batch (replication is in order)."""
    return f"{PREFIX}acked"


def stats() -> str:
    """Cluster-wide counters (durations, outcomes)."""
    return f"{PREFIX}stats"


def workers() -> str:
    """Known workers: hostname → last heartbeat (ms)."""
    return f"{PREFIX}workers"


def worker(hostname: str) -> str:
    """One worker's heartbeat record."""
    return f"{PREFIX}worker:{hostname}"


def metrics(name: str) -> str:
    """Cluster-wide counters: ``submitted``, ``executions``, ``duration``, ``completed``,
    ``webhooks`` (:mod:`celery_app.metrics` describes their fields)."""
    return f"{PREFIX}metrics:{name}"


def health() -> str:
    """The health probe's write: proves Redis accepts writes (OOM, READONLY, MISCONF refuse)."""
    return f"{PREFIX}health"


def webhooks() -> str:
    """Pending webhook deliveries: delivery id → due (or lease expiry) ms."""
    return f"{PREFIX}webhooks"


def webhook(delivery: str) -> str:
    """One webhook delivery's job."""
    return f"{PREFIX}webhook:{delivery}"


def audit() -> str:
    """The audit log stream: one entry per mutation, written with it."""
    return f"{PREFIX}audit"


def upload_owner() -> str:
    """The token this deployment writes into ``UPLOAD_DIR/.owner``: its orphan reaper deletes
    files only in a directory that carries it (:func:`celery_app.uploads.owned`)."""
    return f"{PREFIX}uploads:owner"


def lock(name: str) -> str:
    """A cluster-wide lock held with an expiry."""
    return f"{PREFIX}lock:{name}"


def queue_lists(queue: str) -> list[str]:
    """Every Redis list kombu may keep messages of ``queue`` in."""
    return [queue + suffix for suffix in KOMBU_PRIORITY_SUFFIXES]
