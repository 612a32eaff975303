"""The event stream ``tq:events``: what each entry means and how readers select from it.

Transitions append their event in the same Lua call that makes them; worker presence and queue
depth append theirs from the worker. Each entry has two fields, ``type`` and ``data`` (JSON);
the entry id is the event's ``id``, and its millisecond part its ``timestamp``. The stream is
capped (``EVENTS_MAXLEN``), so a reader can replay what it missed while it is still kept.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from . import keys, model

logger = logging.getLogger(__name__)

EVENT_TYPES = (
    "task.submitted", "task.started", "task.progress", "task.completed", "task.failed",
    "task.retrying", "task.cancelled", "task.dead_letter", "task.callback", "task.throttled",
    "worker.joined", "worker.left", "worker.paused", "worker.resumed", "worker.heartbeat",
    "queue.depth", "queue.paused", "queue.resumed",
)


#: A stream id as clients may send one (``<ms>-<seq>``): at most 19 digits each, so every
#: value the pattern admits is one Redis accepts (below 2^64) and the documented pattern and
#: the check agree exactly.
EVENT_ID_PATTERN = r"^[0-9]{1,19}-[0-9]{1,19}$"


def is_event_id(value: str) -> bool:
    """Whether ``value`` matches :data:`EVENT_ID_PATTERN` (a stream id Redis accepts)."""
    return re.fullmatch(EVENT_ID_PATTERN, value) is not None


def id_key(event_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class Event:
    """One entry of the event stream."""

    id: str
    type: str
    data: dict[str, Any]

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[str, str]) -> Event | None:
        """The event of one stream entry; ``None`` (logged) for an entry not in the stream's
        shape — no ``type``, or a ``data`` that is not a JSON object — which something other
        than this service wrote: readers skip it instead of failing on it."""
        kind = fields.get("type")
        try:
            data = json.loads(fields.get("data") or "{}")
        except ValueError:
            data = None
        if not isinstance(kind, str) or not isinstance(data, dict):
            logger.warning("skipping event %s: not a {type, data} entry", entry_id)
            return None
        return cls(entry_id, kind, data)

    def frame(self) -> dict[str, Any]:
        """The event as a WebSocket client receives it."""
        ms = id_key(self.id)[0]
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        return {"id": self.id, "type": self.type, "timestamp": model.iso(moment),
                "data": self.data}


@dataclass(frozen=True)
class EventFilter:
    """Which events a reader wants: types (exact names or ``prefix.*``) and/or one task."""

    types: frozenset[str] = field(default_factory=frozenset)
    task_id: str | None = None

    @classmethod
    def parse(cls, types: str | None, task_id: str | None) -> EventFilter:
        """From query parameters; raises ``ValueError`` naming an unknown type."""
        wanted = frozenset(t.strip() for t in (types or "").split(",") if t.strip())
        for name in wanted:
            prefix = name[:-1] if name.endswith(".*") else None
            if not (any(t.startswith(prefix) for t in EVENT_TYPES) if prefix
                    else name in EVENT_TYPES):
                raise ValueError(f"unknown event type {name!r}")
        return cls(wanted, task_id or None)

    def matches(self, event: Event) -> bool:
        if self.task_id is not None and event.data.get("task_id") != self.task_id:
            return False
        if not self.types:
            return True
        return any(
            event.type.startswith(t[:-1]) if t.endswith(".*") else event.type == t
            for t in self.types
        )


def read_after(client: redis.Redis, after: str, count: int = 500) -> Iterator[Event]:
    """Every kept event after ``after`` (exclusive), oldest first, read in batches."""
    start = f"({after}"
    while True:
        entries = client.xrange(keys.events(), min=start, count=count)
        for entry_id, fields in entries:
            event = Event.from_entry(entry_id, fields)
            if event is not None:
                yield event
        if len(entries) < count:
            return
        start = f"({entries[-1][0]}"


def read_new(client: redis.Redis, position: str, count: int,
             block_ms: int) -> tuple[list[Event], str]:
    """``(events, position)``: the events after ``position`` (exclusive), oldest first, waiting
    up to ``block_ms`` for the first one (``XREAD BLOCK``), and the id of the last entry read —
    past any entry skipped as malformed, so it is not read again (``position`` itself when none
    came). ``client`` needs a read timeout above ``block_ms``."""
    reply = client.xread({keys.events(): position}, count=count, block=block_ms)
    streams = reply.items() if isinstance(reply, dict) else reply or []
    events = []
    for _, entries in streams:
        for entry_id, fields in entries:
            position = entry_id
            event = Event.from_entry(entry_id, fields)
            if event is not None:
                events.append(event)
    return events, position


def last_id(client: redis.Redis) -> str:
    """The id of the newest event ("0-0" when the stream is empty)."""
    newest = client.xrevrange(keys.events(), count=1)
    return newest[0][0] if newest else "0-0"
