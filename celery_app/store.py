"""The envelope store: every task transition as one atomic Lua call.

Each script (``lua/*.lua``, with ``lua/lib.lua`` prepended) reads the envelope, checks the
transition is allowed, writes the envelope, moves its index entries, appends the event to
``tq:events`` and, where the task must run, pushes its Celery message — one round trip, all or
nothing. The envelope is the truth; events only notify.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import redis

from . import keys, model
from .errors import InvalidState, TaskNotFound
from .messages import MessageBuilder, new_delivery
from .settings import Settings

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
DEFAULT_TIMEOUT_SECONDS = 300
DEFAULT_MAX_RETRIES = 3
_SCRIPTS = (
    "submit", "claim", "progress", "finish", "cancel", "purge", "requeue", "promote", "dlq_clear",
    "worker_beat", "worker_left", "patch",
)


def _load_scripts(client: redis.Redis) -> dict[str, Any]:
    folder = resources.files(__package__).joinpath("lua")
    lib = folder.joinpath("lib.lua").read_text()
    return {
        name: client.register_script(lib + "\n" + folder.joinpath(f"{name}.lua").read_text())
        for name in _SCRIPTS
    }


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


@dataclass(frozen=True)
class NewTask:
    """What a caller asks to run; the store turns it into an envelope."""

    type: str
    payload: dict[str, Any]
    priority: str = model.DEFAULT_PRIORITY
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: int = DEFAULT_TIMEOUT_SECONDS
    metadata: dict[str, Any] | None = None
    scheduled_at: Any = None  # datetime | None
    task_id: str | None = None
    extra: dict[str, Any] | None = None  # upload fields


@dataclass(frozen=True)
class Claim:
    """The answer of the claim step: run the handler only when ``ok``."""

    ok: bool
    state: str
    reason: str = ""
    envelope: dict[str, Any] | None = None


class Store:
    """Task envelopes, their indexes and transitions, in one Redis."""

    def __init__(self, client: redis.Redis, settings: Settings, builder: MessageBuilder) -> None:
        self.redis = client
        self.settings = settings
        self.builder = builder
        self._scripts = _load_scripts(client)

    # -- plumbing -----------------------------------------------------------------------------

    def _run(self, name: str, task_id: str, *args: Any, moment: datetime | None = None) -> Any:
        """Run a script about one task: ``ARGV[5]`` is its id."""
        return self.call_script(name, [keys.task(task_id)], task_id, *args, moment=moment)

    def call_script(
        self, name: str, script_keys: list[str], *args: Any, moment: datetime | None = None
    ) -> Any:
        """Run store script ``name`` with the common arguments (prefix, now, events cap).

        ``moment`` is the script's "now"; pass it when the caller already stamped fields with
        it, so that every timestamp and index score written by the call agrees.
        """
        moment = moment or model.now()
        argv = [keys.PREFIX, model.iso(moment), model.ms(moment), self.settings.events_maxlen]
        return self._scripts[name](keys=script_keys, args=[*argv, *args])

    def _message(self, envelope: dict[str, Any], delivery: str) -> str:
        return self.builder.build(
            task_id=envelope["id"],
            name=envelope["type"],
            kwargs=envelope.get("payload") or {},
            queue=envelope["priority"],
            delivery=delivery,
            timeout=int(envelope["timeout"]),
        )

    # -- creating and reading -----------------------------------------------------------------

    def submit(
        self, new: NewTask, idempotency_key: str | None = None, *, adopt_delivery: str | None = None
    ) -> tuple[dict, bool]:
        """Create a task and queue it (or park it until ``scheduled_at``), in one round trip.

        Returns ``(envelope, created)``; ``created`` is false when ``idempotency_key`` was seen
        within 24 h, and the envelope is then the first task's. With ``adopt_delivery`` the
        message is someone else's (a direct Celery publish carrying that delivery): the envelope
        is created, nothing is queued.
        """
        moment = model.now()
        task_id = new.task_id or model.new_task_id()
        scheduled = new.scheduled_at is not None and new.scheduled_at > moment
        envelope: dict[str, Any] = {
            "id": task_id,
            "type": new.type,
            "payload": new.payload,
            "priority": new.priority,
            "state": model.SCHEDULED if scheduled else model.PENDING,
            "progress": 0,
            "attempts": 0,
            "max_retries": new.max_retries,
            "timeout": new.timeout,
            "metadata": new.metadata or {},
            "created_at": model.iso(moment),
            "updated_at": model.iso(moment),
            "created_ms": model.ms(moment),
            **(new.extra or {}),
        }
        if scheduled:
            envelope["scheduled_at"] = model.iso(new.scheduled_at)
        delivery = adopt_delivery if adopt_delivery is not None else new_delivery()
        message = "" if adopt_delivery is not None else self._message(envelope, delivery)
        fields = model.encode(envelope)
        flat = [item for pair in fields.items() for item in pair]
        created, stored = self._run(
            "submit",
            task_id,
            keys.idempotency(idempotency_key) if idempotency_key else "",
            IDEMPOTENCY_TTL_SECONDS,
            delivery,
            message,
            model.ms(new.scheduled_at) if scheduled else "",
            *flat,
            moment=moment,
        )
        return model.decode(_pairs(stored)), bool(created)

    def get(self, task_id: str) -> dict[str, Any]:
        """The envelope, or :class:`TaskNotFound`."""
        fields = self.redis.hgetall(keys.task(task_id))
        if not fields:
            raise TaskNotFound()
        return model.decode(fields)

    def get_many(self, task_ids: list[str]) -> list[dict[str, Any]]:
        """Envelopes of several tasks in one round trip, skipping ids that no longer exist."""
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(keys.task(task_id))
        return [model.decode(fields) for fields in pipe.execute() if fields]

    # -- transitions --------------------------------------------------------------------------

    def claim(self, task_id: str, delivery: str, worker: str) -> Claim:
        """pending → running for the live delivery; anything else is a skip."""
        answer = self._run("claim", task_id, delivery, worker)
        if answer[0] == "ok":
            return Claim(True, model.RUNNING, envelope=model.decode(_pairs(answer[1])))
        return Claim(False, answer[1], answer[2])

    def progress(self, task_id: str, delivery: str, percent: int, message: str | None) -> bool:
        """Record a running execution's progress (and emit ``task.progress``)."""
        answer = self._run("progress", task_id, delivery, percent, message or "")
        return answer[0] == "ok"

    def complete(self, task_id: str, delivery: str, result: Any) -> bool:
        """running → completed with the handler's result; false when the execution was stale."""
        answer = self._run("finish", task_id, delivery, "completed", model.dumps(result))
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
            due = model.now() + timedelta(seconds=delay)
            delivery_next = new_delivery()
            answer = self._run(
                "finish", task_id, delivery, "retrying", error, model.iso(due), model.ms(due),
                delivery_next, self._message(envelope, delivery_next), "",
            )
        else:
            reason = "max retries exceeded" if retryable else "non-retryable error"
            answer = self._run(
                "finish", task_id, delivery, "dead_letter", error, "", "", "", "", reason
            )
        return answer[1] if answer[0] == "stale" else model.decode(_pairs(answer[1]))["state"]

    def backoff_seconds(self, failures: int) -> float:
        """Delay before the next execution after ``failures`` failed ones: exponential, ±10 %."""
        base = self.settings.retry_backoff_seconds * 2 ** (failures - 1)
        return min(self.settings.retry_backoff_max_seconds, base * random.uniform(0.9, 1.1))

    def cancel(self, task_id: str) -> dict[str, Any]:
        """pending/scheduled/retrying → cancelled; the handler never runs afterwards."""
        answer = self._run("cancel", task_id)
        return _envelope_or_raise(answer, "task cannot be cancelled in current state")

    def purge(self, task_id: str) -> dict[str, Any]:
        """Delete a final-state task and everything that refers to it; returns what it was."""
        answer = self._run("purge", task_id)
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
    ) -> dict[str, Any]:
        """An external processor's report: ``processing``/``completed``/``failed``, progress,
        error, result. Final tasks refuse it (409)."""
        answer = self._run(
            "patch", task_id, status or "", "" if progress is None else progress,
            error_message or "", model.dumps(result) if has_result else "",
        )
        return _envelope_or_raise(answer, "task cannot be updated in current state")

    def statistics(self) -> dict[str, Any]:
        """Counts by state and status over all stored tasks, success rate and mean processing
        time — a fixed number of Redis commands in one round trip, whatever the task count."""
        pipe = self.redis.pipeline(transaction=False)
        for state in model.STATES:
            pipe.zcard(keys.index("created", f"state:{state}"))
        pipe.hmget(keys.stats(), "duration_ms_sum", "duration_count")
        *counts, (duration_sum, duration_count) = pipe.execute()
        by_state = dict(zip(model.STATES, counts, strict=True))
        by_status = dict.fromkeys(model.STATUSES, 0)
        for state, count in by_state.items():
            by_status[model.STATUS_OF_STATE[state]] += count
        succeeded = by_state[model.COMPLETED]
        finished = succeeded + by_state[model.FAILED] + by_state[model.DEAD_LETTER]
        completed_runs = int(duration_count or 0)
        return {
            "total": sum(counts),
            **by_status,
            "by_state": by_state,
            "success_rate": round(succeeded / finished, 4) if finished else 0.0,
            "avg_processing_time_ms": (
                round(int(duration_sum or 0) / completed_runs, 1) if completed_runs else 0.0
            ),
        }

    def expired(self, retention_seconds: float, limit: int = 500) -> list[str]:
        """Final-state tasks older than the retention period, oldest first."""
        cutoff = model.ms(model.now()) - int(retention_seconds * 1000)
        return self.redis.zrangebyscore(keys.final(), "-inf", cutoff, start=0, num=limit)

    def requeue(self, task_id: str, allowed: frozenset[str], *, reset: bool) -> dict[str, Any]:
        """Queue a task again under its id from one of ``allowed`` states."""
        envelope = self.get(task_id)
        delivery = new_delivery()
        answer = self._run(
            "requeue", task_id, " ".join(sorted(allowed)), delivery,
            self._message(envelope, delivery), "1" if reset else "0",
        )
        return _envelope_or_raise(answer, "task cannot be retried in current state")

    def promote_due(self, limit: int = 500) -> list[str]:
        """Release delayed tasks whose time has come; returns their ids."""
        return self.call_script("promote", [keys.delayed(), keys.delayed_messages()], limit)

    def running_by_worker(self) -> dict[str, list[tuple[str, str, int]]]:
        """Running tasks by the worker that claimed them: worker → [(id, delivery, started ms)]."""
        ids = self.redis.zrange(keys.index("created", f"state:{model.RUNNING}"), 0, -1)
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

    # -- dead-letter queue --------------------------------------------------------------------

    def dlq_page(self, count: int, after: str | None) -> tuple[list[dict[str, Any]], int]:
        """DLQ entries oldest first (after entry ``after``, exclusive), and the DLQ's size."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(keys.dlq(), min=f"({after}" if after else "-", count=count)
        pipe.xlen(keys.dlq())
        entries, size = pipe.execute()
        envelopes = {e["id"]: e for e in self.get_many([f["task_id"] for _, f in entries])}
        page = [
            {"task": envelopes[f["task_id"]], "reason": f["reason"], "added_at": f["added_at"],
             "message_id": entry_id}
            for entry_id, f in entries
            if f["task_id"] in envelopes
        ]
        return page, size

    def dlq_retry(self, task_id: str) -> dict[str, Any]:
        """Queue a dead-lettered task again (attempts, progress and error reset)."""
        fields = self.redis.hmget(keys.task(task_id), "state", "dlq_id")
        if fields[0] != model.DEAD_LETTER or not fields[1]:
            raise TaskNotFound("task not in the dead-letter queue")
        return self.requeue(task_id, frozenset({model.DEAD_LETTER}), reset=True)

    def dlq_task_ids(self, batch: int = 500) -> list[str]:
        """Every task id in the DLQ, oldest first."""
        ids: list[str] = []
        start = "-"
        while True:
            entries = self.redis.xrange(keys.dlq(), min=start, count=batch)
            ids += [fields["task_id"] for _, fields in entries]
            if len(entries) < batch:
                return ids
            start = f"({entries[-1][0]}"

    def dlq_clear(self) -> int:
        """Empty the DLQ; the envelopes stay, in state ``dead_letter``."""
        cleared = 0
        while True:
            removed = self.call_script("dlq_clear", [keys.dlq()], 500)
            cleared += removed
            if removed < 500:
                return cleared

    # -- listing and counting -----------------------------------------------------------------

    def page(
        self, *, filter_: str, sort: str, descending: bool, page: int, page_size: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of envelopes from an index, and the index's size: O(log n + page)."""
        key = keys.index(sort, filter_)
        start = (page - 1) * page_size
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(key)
        pipe.zrange(key, start, start + page_size - 1, desc=descending)
        total, ids = pipe.execute()
        return (self.get_many(ids) if ids else []), total

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting in each Celery queue (all of kombu's lists for it)."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in model.QUEUES:
            for name in keys.queue_lists(queue):
                pipe.llen(name)
        lengths = pipe.execute()
        per = len(keys.KOMBU_PRIORITY_SUFFIXES)
        return {q: sum(lengths[i * per : (i + 1) * per]) for i, q in enumerate(model.QUEUES)}
