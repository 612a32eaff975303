"""The task model: states, the upload tracker's status view, priorities and the envelope codec.

The envelope is stored as a Redis hash: scalar fields as themselves, ``payload``, ``metadata`` and
``result`` as JSON text. Lua scripts change scalar fields only, so client JSON is never re-encoded
by Redis (whose cjson would round big integers and turn ``[]`` into ``{}``).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from . import strictjson

PENDING, SCHEDULED, RUNNING, RETRYING = "pending", "scheduled", "running", "retrying"
COMPLETED, FAILED, DEAD_LETTER, CANCELLED = "completed", "failed", "dead_letter", "cancelled"
STATES = (PENDING, SCHEDULED, RUNNING, RETRYING, COMPLETED, FAILED, DEAD_LETTER, CANCELLED)
FINAL_STATES = frozenset({COMPLETED, FAILED, DEAD_LETTER, CANCELLED})

#: The upload tracker's coarse view of a state.
STATUS_OF_STATE = {
    PENDING: "pending",
    SCHEDULED: "pending",
    RETRYING: "pending",
    RUNNING: "processing",
    COMPLETED: "completed",
    FAILED: "failed",
    DEAD_LETTER: "failed",
    CANCELLED: "cancelled",
}
STATUSES = ("pending", "processing", "completed", "failed", "cancelled")

#: Priority name → number; the Celery queue of a task is its priority name.
PRIORITIES = {"low": 0, "normal": 1, "high": 2, "critical": 3}
PRIORITY_NAMES = {number: name for name, number in PRIORITIES.items()}
#: Strict consumption order for a worker that reads several queues.
QUEUES = ("critical", "high", "normal", "low")
DEFAULT_PRIORITY = "low"

_JSON_FIELDS = ("payload", "metadata", "result")
_INT_FIELDS = ("progress", "attempts", "max_retries", "timeout", "file_size")
#: Bookkeeping fields kept in the hash but not part of the public envelope.
_PRIVATE_FIELDS = ("delivery", "created_ms", "started_ms", "duration_ms", "dlq_id", "queued_ms",
                   "cb_delivery", "lease", "lease_until")
#: Hash fields of the webhook's delivery state → keys of the envelope's ``callback`` object.
CALLBACK_FIELDS = {"cb_state": "state", "cb_attempts": "attempts", "cb_status": "last_status",
                   "cb_error": "last_error"}


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_task_id() -> str:
    """A UUID4, the id of tasks created through the task API."""
    return str(uuid.uuid4())


def now() -> datetime:
    """The current time in UTC (one place, so every timestamp has the same form)."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def ms(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def iso_ms(milliseconds: int) -> str:
    """:func:`iso` of a time given in milliseconds since the epoch (e.g. Redis ``TIME``)."""
    return iso(EPOCH + timedelta(milliseconds=milliseconds))


def dumps(value: Any) -> str:
    """Compact strict JSON (UTF-8 text), the form every JSON field is stored in.

    ``ValueError`` for NaN/±Infinity or a lone surrogate (:func:`strictjson.dumps`): nothing
    stored can later be served as invalid JSON.
    """
    return strictjson.dumps(value, separators=(",", ":"))


def encode(envelope: dict[str, Any]) -> dict[str, str | int]:
    """An envelope as hash fields (omitting absent values)."""
    fields: dict[str, str | int] = {}
    for name, value in envelope.items():
        if value is None:
            continue
        if name in _JSON_FIELDS:
            fields[name] = dumps(value)
        elif isinstance(value, bool):
            fields[name] = int(value)
        else:
            fields[name] = value
    return fields


def decode(fields: dict[str, str]) -> dict[str, Any]:
    """Hash fields as the public envelope."""
    envelope: dict[str, Any] = {}
    for name, raw in fields.items():
        if name in _PRIVATE_FIELDS or name in CALLBACK_FIELDS or raw == "":
            continue
        if name in _JSON_FIELDS:
            envelope[name] = json.loads(raw)
        elif name in _INT_FIELDS:
            envelope[name] = int(raw)
        else:
            envelope[name] = raw
    if "id" in envelope:
        envelope["task_id"] = envelope["id"]
    if "state" in envelope:
        envelope["status"] = STATUS_OF_STATE[envelope["state"]]
    if "error" in envelope:
        envelope["error_message"] = envelope["error"]
    if fields.get("cb_state"):
        envelope["callback"] = _callback(fields)
    return envelope


def _callback(fields: dict[str, str]) -> dict[str, Any]:
    """The webhook's delivery state: ``{"state", "attempts", "last_status", "last_error"}``."""
    status, error = fields.get("cb_status"), fields.get("cb_error")
    return {"state": fields["cb_state"], "attempts": int(fields.get("cb_attempts") or 0),
            "last_status": int(status) if status else None, "last_error": error or None}
