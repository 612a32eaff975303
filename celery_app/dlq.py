"""The dead-letter queue: tasks whose retries ran out or whose error was permanent.

An entry of the ``tq:dlq`` stream (``task_id``, ``reason``, ``added_at``) is appended by the
finish script in the same step that moves the task to ``dead_letter`` and records the entry's
id in the envelope (``dlq_id``); retrying or purging the task deletes the entry. The envelope
stays the truth: an entry whose task is gone is skipped when read.

Keys (:mod:`celery_app.keys`): ``tq:dlq`` (stream), read with the envelopes ``tq:task:<id>``.
"""

from __future__ import annotations

from typing import Any

import redis

from . import keys, model
from .audit import Audit, argv
from .errors import TaskNotFound
from .store import Store

#: Entries removed per script call when the DLQ is emptied (bounds each call's blocking time).
CLEAR_BATCH = 500


class DeadLetters:
    """Reads, retries and clears the dead-letter queue of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis: redis.Redis = store.redis

    def size(self, pipe: Any = None) -> Any:
        """Entries in the DLQ (``XLEN``); with ``pipe`` the command is queued on it."""
        return (pipe if pipe is not None else self.redis).xlen(keys.dlq())

    def page(self, count: int, after: str | None) -> tuple[list[dict[str, Any]], int]:
        """Entries oldest first (after entry id ``after``, exclusive), and the DLQ's size.

        Each entry is ``{"task", "reason", "added_at", "message_id"}``; ``task`` is the
        envelope.
        """
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(keys.dlq(), min=f"({after}" if after else "-", count=count)
        self.size(pipe)
        entries, size = pipe.execute()
        envelopes = {e["id"]: e for e in self.store.get_many([f["task_id"] for _, f in entries])}
        page = [
            {
                "task": envelopes[f["task_id"]],
                "reason": f["reason"],
                "added_at": f["added_at"],
                "message_id": entry_id,
            }
            for entry_id, f in entries
            if f["task_id"] in envelopes
        ]
        return page, size

    def retry(self, task_id: str, audit: Audit | None = None) -> dict[str, Any]:
        """Queue a dead-lettered task again (attempts, progress and error reset); raises
        :class:`TaskNotFound` when the task is not in the DLQ."""
        fields = self.redis.hmget(keys.task(task_id), "state", "dlq_id")
        if fields[0] != model.DEAD_LETTER or not fields[1]:
            raise TaskNotFound("task not in the dead-letter queue")
        return self.store.requeue(task_id, frozenset({model.DEAD_LETTER}), reset=True,
                                  audit=audit)

    def task_ids(self, batch: int = 500) -> list[str]:
        """Every task id in the DLQ, oldest first."""
        ids: list[str] = []
        start = "-"
        while True:
            entries = self.redis.xrange(keys.dlq(), min=start, count=batch)
            ids += [fields["task_id"] for _, fields in entries]
            if len(entries) < batch:
                return ids
            start = f"({entries[-1][0]}"

    def clear(self, audit: Audit | None = None) -> int:
        """Empty the DLQ; the envelopes stay, in state ``dead_letter``. Returns entries removed.

        Each batch is its own transaction, so each batch that removed entries writes its own
        ``audit`` entry (``detail.cleared``: how many); an empty DLQ writes none."""
        cleared = 0
        while True:
            removed = self.store.scripts.run("dlq_clear", [keys.dlq()], CLEAR_BATCH, argv(audit))
            cleared += removed
            if removed < CLEAR_BATCH:
                return cleared
