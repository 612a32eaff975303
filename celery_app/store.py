"""Tasks: the envelope and its transitions, each one atomic Lua call.

Each transition (submit, claim, progress, finish, cancel, purge, patch, requeue, promote) is a
script run by :class:`~celery_app.scripts.Scripts`: it reads the envelope, checks the
transition is allowed, writes the envelope, moves its index entries, appends the event to
``tq:events`` and, where the task must run, pushes its Celery message — one round trip, all or
nothing. The envelope is the truth; events only notify.

Keys (:mod:`celery_app.keys`): ``tq:task:<id>`` (the envelope), the ``tq:idx:*`` indexes,
``tq:delayed`` and ``tq:delayed:msg`` (held messages), ``tq:types``,
``tq:idem:<key>``, plus the event stream, the DLQ stream and the counters the scripts update.
The dead-letter queue is :mod:`celery_app.dlq`; listing and statistics are
:mod:`celery_app.listing`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from . import defaults, keys, model, replication, strictjson
from .audit import Audit, argv
from .errors import IdempotencyMismatch, InvalidState, TaskNotFound
from .messages import MessageBuilder, new_delivery
from .scripts import Scripts
from .settings import Settings


def _envelope_or_raise(answer: list[Any], conflict: str) -> dict[str, Any]:
    """A script's ``{'ok', envelope}`` as the envelope; ``missing``/``conflict`` as errors."""
    if answer[0] == "missing":
        raise TaskNotFound()
    if answer[0] == "conflict":
        raise InvalidState(conflict, answer[1])
    return model.decode(_pairs(answer[1]))


def _pairs(flat: list[str] | dict[str, str]) -> dict[str, str]:
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[0::2], flat[1::2], strict=True))


#: The submit script's answer when it created the task: ``{CREATED, fields it stamped}``.
CREATED = 3


def _as_stored(value: Any) -> str:
    """A hash value as ``HGETALL`` answers it: redis-py writes numbers with ``repr``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    return repr(value)


def submitted_envelope(answer: list[Any], flat: list[Any]) -> tuple[int, dict[str, Any]]:
    """The submit script's ``{code, fields}`` answer as ``(code, envelope)``.

    For a created task (:data:`CREATED`) the script answers only the fields it stamped (state,
    timestamps); the envelope is those, then the caller's own field/value pairs ``flat``, in
    the order the script wrote them: what ``HGETALL`` would read back, without carrying it.
    Otherwise the answer holds the stored envelope itself.
    """
    code, fields = answer
    if code == CREATED:
        stored = _pairs(fields)
        for i in range(0, len(flat), 2):
            stored[flat[i]] = _as_stored(flat[i + 1])
        return code, model.decode(stored)
    return code, model.decode(_pairs(fields))


@dataclass(frozen=True)
class NewTask:
    """What a caller asks to run; the store turns it into an envelope."""

    type: str
    payload: dict[str, Any]
    priority: str = model.DEFAULT_PRIORITY
    max_retries: int = defaults.DEFAULT_MAX_RETRIES
    timeout: int = defaults.DEFAULT_TIMEOUT_SECONDS
    metadata: dict[str, Any] | None = None
    scheduled_at: Any = None  # datetime | None
    task_id: str | None = None
    extra: dict[str, Any] | None = None  # upload fields
    callback_url: str | None = None  # completion webhook (celery_app/webhooks.py)

    #: What a caller asked for: an ``Idempotency-Key`` may only be repeated with the same.
    REQUEST_FIELDS = ("type", "payload", "priority", "max_retries", "timeout", "metadata",
                      "scheduled_at", "callback_url")

    def request(self) -> dict[str, Any]:
        """The caller's request, as compared for an idempotent repeat."""
        scheduled = self.scheduled_at
        return {"type": self.type, "payload": self.payload, "priority": self.priority,
                "max_retries": self.max_retries, "timeout": self.timeout,
                "metadata": self.metadata or {},
                "scheduled_at": model.iso(scheduled) if scheduled is not None else None,
                "callback_url": self.callback_url}

    def request_hash(self) -> str:
        """SHA-256 (hex) of :meth:`request` as canonical JSON (sorted keys, compact)."""
        canonical = strictjson.dumps(self.request(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def differences(self, envelope: dict[str, Any]) -> list[str]:
        """Fields of :meth:`request` whose values differ from a stored ``envelope``'s."""
        mine = self.request()
        theirs = {name: envelope.get(name) for name in self.REQUEST_FIELDS}
        theirs["metadata"] = theirs["metadata"] or {}
        if theirs["scheduled_at"] is None or mine["scheduled_at"] is None:
            mine["scheduled_at"] = theirs["scheduled_at"] = None  # "now" is not stored
        return [name for name in self.REQUEST_FIELDS if mine[name] != theirs[name]]


@dataclass(frozen=True)
class Claim:
    """The answer of the claim step: run the handler only when ``ok``.

    ``envelope`` holds what the execution needs to record its outcome (``id``, ``type``,
    ``priority``, ``attempts``, ``max_retries``, ``timeout``), not the whole envelope: the
    payload is the message's own keyword arguments.
    """

    ok: bool
    state: str
    reason: str = ""
    envelope: dict[str, Any] | None = None
    #: Not now (worker or queue paused, an earlier execution still runs): put the message back.
    requeue: bool = False
    #: Held back by a limit of its type until then (Redis time, ms): park it (:meth:`throttle`).
    throttled_until_ms: int | None = None


class Store:
    """Task envelopes and their transitions, in one Redis."""

    def __init__(self, client: redis.Redis, settings: Settings, builder: MessageBuilder,
                 scripts: Scripts | None = None, wait_client: redis.Redis | None = None) -> None:
        self.redis = client
        self.settings = settings
        self.builder = builder
        self.scripts = scripts or Scripts(client, settings.events_maxlen)
        #: The client of acknowledged writes (its read timeout outlasts ``REDIS_WAIT_TIMEOUT_MS``).
        self.wait_client = wait_client or client
        self._run = self.scripts.run_for_task

    def _run_acknowledged(self, name: str, task_id: str, *args: Any) -> Any:
        """:meth:`Scripts.run_for_task`, answering only once ``REDIS_MIN_REPLICAS`` replicas
        hold its writes — ``WAIT`` in the same round trip (:mod:`celery_app.replication`);
        else ``NotReplicated`` (503)."""
        if not self.settings.redis_min_replicas:
            return self._run(name, task_id, *args)
        call = (self.scripts[name], [keys.task(task_id)], self.scripts.arguments(task_id, *args))
        return replication.acknowledged(self.wait_client, self.settings, [call])[0]

    def now_ms(self) -> int:
        """Redis's clock (``TIME``) in milliseconds since the epoch: the one clock that shared
        state is compared on."""
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def _message(self, envelope: dict[str, Any], delivery: str) -> str:
        return self.builder.build(
            task_id=envelope["id"],
            name=envelope["type"],
            kwargs=envelope.get("payload") or {},
            queue=envelope["priority"],
            delivery=delivery,
            timeout=int(envelope["timeout"]),
        )

    def prepare(self, new: NewTask, adopt_delivery: str | None = None
                 ) -> tuple[str, str, str, list[Any]]:
        """``(task id, delivery, Celery message, envelope field/value pairs)`` for the submit
        script; the message is empty when ``adopt_delivery`` (Celery publishes it itself)."""
        task_id = new.task_id or model.new_task_id()
        envelope: dict[str, Any] = {
            "id": task_id,
            "type": new.type,
            "payload": new.payload,
            "priority": new.priority,
            "progress": 0,
            "attempts": 0,
            "max_retries": new.max_retries,
            "timeout": new.timeout,
            "metadata": new.metadata or {},
            "callback_url": new.callback_url,
            **(new.extra or {}),
        }
        delivery = adopt_delivery if adopt_delivery is not None else new_delivery()
        message = "" if adopt_delivery is not None else self._message(envelope, delivery)
        flat = [item for pair in model.encode(envelope).items() for item in pair]
        return task_id, delivery, message, flat

    def submit(
        self, new: NewTask, idempotency_key: str | None = None, *, adopt_delivery: str | None = None
    ) -> tuple[dict, bool]:
        """Create a task and queue it (or park it until ``scheduled_at``), in one round trip.

        Whether ``scheduled_at`` is still ahead is decided by the script on Redis's clock, which
        also stamps ``created_at``. Returns ``(envelope, created)``; ``created`` is false when
        ``idempotency_key`` was seen within 24 h with the same request
        (:meth:`NewTask.request_hash`), and the envelope is then the first task's; with a
        different request it raises :class:`~celery_app.errors.IdempotencyMismatch` (422) naming
        the fields that differ.
        With ``REDIS_MIN_REPLICAS`` > 0 it returns only once replicas hold the task, else raises
        ``NotReplicated`` (503; a retry with the same key is safe — :mod:`celery_app.replication`).
        With ``adopt_delivery`` the message is someone else's (a direct Celery publish carrying
        that delivery): the envelope is created, nothing is queued.
        """
        task_id, delivery, message, flat = self.prepare(new, adopt_delivery)
        created, stored = self._run_acknowledged(
            "submit",
            task_id,
            keys.idempotency(idempotency_key) if idempotency_key else "",
            defaults.IDEMPOTENCY_TTL_SECONDS,
            delivery,
            message,
            model.ms(new.scheduled_at) if new.scheduled_at is not None else "",
            new.request_hash() if idempotency_key else "",
            *flat,
        )
        created, first = submitted_envelope([created, stored], flat)
        if created == 2:
            differ = ", ".join(new.differences(first))
            raise IdempotencyMismatch(
                f"Idempotency-Key {idempotency_key!r} was already used for task {first['id']} "
                f"with a different request{f' (different {differ})' if differ else ''}; use a "
                "new key for a new request")
        return first, bool(created)

    def get(self, task_id: str) -> dict[str, Any]:
        """The envelope, or :class:`TaskNotFound`."""
        fields = self.redis.hgetall(keys.task(task_id))
        if not fields:
            raise TaskNotFound()
        return model.decode(fields)

    def result(self, task_id: str, default: Any = None) -> Any:
        """A task's stored result (decoded JSON; may be ``None``), or ``default`` when it has
        none (not finished, or no such task)."""
        raw = self.redis.hget(keys.task(task_id), "result")
        return default if raw is None else json.loads(raw)

    def get_many(self, task_ids: list[str]) -> list[dict[str, Any]]:
        """Envelopes of several tasks in one round trip, skipping ids that no longer exist."""
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(keys.task(task_id))
        return [model.decode(fields) for fields in pipe.execute() if fields]

    def claim(self, task_id: str, delivery: str, worker: str) -> Claim:
        """pending → running for the live delivery, taking the task's lease (for
        :attr:`Settings.lease_seconds`); anything else is a skip (``requeue`` when the message
        must go back to its queue: worker or queue paused, an earlier execution still runs)."""
        lease_ms = int(self.settings.lease_seconds * 1000)
        answer = self._run("claim", task_id, delivery, worker, lease_ms)
        if answer[0] == "ok":
            _, attempts, max_retries, timeout, priority, task_type = answer
            envelope = {"id": task_id, "type": task_type, "priority": priority,
                        "attempts": int(attempts), "max_retries": int(max_retries),
                        "timeout": int(timeout)}
            return Claim(True, model.RUNNING, envelope=envelope)
        if len(answer) > 4 and answer[3] == "throttle":
            return Claim(False, answer[1], answer[2], throttled_until_ms=int(answer[4]))
        return Claim(False, answer[1], answer[2], requeue=len(answer) > 3)

    def throttle(self, task_id: str, delivery: str, until_ms: int) -> bool:
        """Park a task a limit holds back (:mod:`celery_app.limits`) until ``until_ms`` (Redis
        time): still pending, ``throttled_until`` set, a new message waiting in ``tq:delayed``;
        the claimed message (``delivery``) becomes stale. False when the task moved on."""
        envelope = self.get(task_id)
        parked = new_delivery()
        return bool(self._run("throttle", task_id, delivery, parked,
                              self._message(envelope, parked), until_ms))

    def progress(self, task_id: str, delivery: str, percent: int, message: str | None) -> bool:
        """Record a running execution's progress (and emit ``task.progress``)."""
        answer = self._run("progress", task_id, delivery, percent, message or "")
        return answer[0] == "ok"

    def complete(self, task_id: str, delivery: str, result: Any,
                 result_json: str | None = None) -> bool:
        """running → completed with the handler's result (``result_json``: the caller's own
        :func:`model.dumps` of it, not made again); false when the execution was stale."""
        if result_json is None:
            result_json = model.dumps(result)
        answer = self._run("finish", task_id, delivery, "completed", result_json)
        return answer[0] == "ok"

    def fail(
        self,
        envelope: dict[str, Any],
        delivery: str,
        error: str,
        *,
        retryable: bool = True,
        delay_seconds: float | None = None,
    ) -> str:
        """Record a failed execution: ``retrying`` while retries are left, else ``dead_letter``.

        The retry waits :meth:`backoff_seconds` unless ``delay_seconds`` is given. Returns the
        task's state afterwards (unchanged when this execution no longer held the task).
        """
        task_id = envelope["id"]
        attempts = int(envelope.get("attempts", 1))
        if retryable and attempts <= int(envelope["max_retries"]):
            delay = self.backoff_seconds(attempts) if delay_seconds is None else delay_seconds
            delivery_next = new_delivery()
            answer = self._run(
                "finish", task_id, delivery, "retrying", error, int(delay * 1000),
                delivery_next, self._message(envelope, delivery_next), "",
            )
        else:
            reason = "max retries exceeded" if retryable else "non-retryable error"
            answer = self._run(
                "finish", task_id, delivery, "dead_letter", error, "", "", "", reason
            )
        return answer[1]

    def backoff_seconds(self, failures: int) -> float:
        """Delay before the next execution after ``failures`` failed ones: exponential, ±10 %."""
        base = self.settings.retry_backoff_seconds * 2 ** (failures - 1)
        return min(self.settings.retry_backoff_max_seconds, base * random.uniform(0.9, 1.1))

    def cancel(self, task_id: str, audit: Audit | None = None) -> dict[str, Any]:
        """pending/scheduled/retrying → cancelled; the handler never runs afterwards.

        ``audit`` (here and in every mutation below) is written in the same script, only when
        the change is made (:mod:`celery_app.audit`)."""
        answer = self._run("cancel", task_id, argv(audit))
        return _envelope_or_raise(answer, "task cannot be cancelled in current state")

    def purge(self, task_id: str, audit: Audit | None = None) -> dict[str, Any]:
        """Delete a final-state task and everything that refers to it; returns what it was."""
        answer = self._run("purge", task_id, argv(audit), keys.PURGED_TTL_SECONDS)
        return _envelope_or_raise(answer, "task cannot be deleted in current state")

    def patch(
        self,
        task_id: str,
        *,
        status: str | None = None,
        progress: int | None = None,
        error_message: str | None = None,
        result: Any = None,
        has_result: bool = False,
        audit: Audit | None = None,
    ) -> dict[str, Any]:
        """An external processor's report: ``processing``/``completed``/``failed``, progress,
        error, result. Final tasks refuse it (409)."""
        answer = self._run(
            "patch", task_id, status or "", "" if progress is None else progress,
            error_message or "", model.dumps(result) if has_result else "", argv(audit),
        )
        return _envelope_or_raise(answer, "task cannot be updated in current state")

    def expired(self, retention_seconds: float, limit: int = 500) -> list[str]:
        """Final-state tasks older than the retention period on Redis's clock, oldest first."""
        cutoff = self.now_ms() - int(retention_seconds * 1000)
        return self.last_updated_before(model.FINAL_STATES, cutoff, limit)

    def last_updated_before(self, states: Iterable[str], cutoff_ms: int,
                            limit: int) -> list[str]:
        """Tasks in one of ``states`` whose last transition was at or before ``cutoff_ms``
        (Redis clock), oldest first, at most ``limit``: ranges of the per-type updated indexes,
        O(types × states × log n + limit)."""
        states = tuple(states)
        task_types = sorted(self.redis.smembers(keys.types()))
        pipe = self.redis.pipeline(transaction=False)
        for task_type in task_types:
            for state in states:
                base = keys.STATE_RANK[state] * keys.UPDATED_UNIT
                pipe.zrangebyscore(keys.updated_index(task_type), base, base + cutoff_ms,
                                   start=0, num=limit, withscores=True)
        found: list[tuple[float, str]] = []
        ranges = pipe.execute() if task_types else []
        for state, entries in zip(states * len(task_types), ranges, strict=True):
            base = keys.STATE_RANK[state] * keys.UPDATED_UNIT
            found += [(score - base, task_id) for task_id, score in entries]
        return [task_id for _, task_id in sorted(found)[:limit]]

    def requeue(self, task_id: str, allowed: frozenset[str], *, reset: bool,
                audit: Audit | None = None) -> dict[str, Any]:
        """Queue a task again under its id from one of ``allowed`` states."""
        envelope = self.get(task_id)
        delivery = new_delivery()
        answer = self._run(
            "requeue", task_id, " ".join(sorted(allowed)), delivery,
            self._message(envelope, delivery), "1" if reset else "0", argv(audit),
        )
        if answer[0] == "busy":
            raise InvalidState("task is still being executed; retry once that execution ends",
                               answer[1])
        return _envelope_or_raise(answer, "task cannot be retried in current state")

    def promote_due(self, limit: int = 500) -> list[str]:
        """Release delayed tasks whose time has come; returns their ids."""
        return self.scripts.run("promote", [keys.delayed(), keys.delayed_messages()], limit)

    def running_by_worker(self) -> dict[str, list[tuple[str, str, int]]]:
        """Running tasks by the worker that claimed them: worker → [(id, delivery, started ms)]."""
        base = keys.STATE_RANK[model.RUNNING] * keys.STATE_UNIT
        ids = self.redis.zrangebyscore(keys.state_index(), base, base + keys.STATE_UNIT - 1)
        pipe = self.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.hmget(keys.task(task_id), "worker_id", "delivery", "started_ms")
        grouped: dict[str, list[tuple[str, str, int]]] = {}
        for task_id, (worker, delivery, started) in zip(ids, pipe.execute(), strict=True):
            if worker is not None:
                grouped.setdefault(worker, []).append((task_id, delivery or "", int(started or 0)))
        return grouped

    def recover_lost(self, task_id: str, delivery: str, error: str) -> str:
        """A running task whose worker is gone: count the attempt and queue it again now
        (or dead-letter it when retries are exhausted). Returns the resulting state."""
        try:
            envelope = self.get(task_id)
        except TaskNotFound:
            return "missing"
        return self.fail(envelope, delivery, error, delay_seconds=0)

    def republish(self, task_id: str, lost_delivery: str) -> bool:
        """Queue a pending task's message again under a new delivery, if it is still pending
        with ``lost_delivery`` (see :mod:`celery_app.recovery`); true when re-published."""
        try:
            envelope = self.get(task_id)
        except TaskNotFound:
            return False
        delivery = new_delivery()
        message = self._message(envelope, delivery)
        return bool(self._run("republish", task_id, lost_delivery, delivery, message))
