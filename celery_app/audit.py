"""The audit log: one entry per mutation, written in the same transaction as the mutation.

``tq:audit`` is a stream capped by ``AUDIT_MAXLEN`` (``XADD MAXLEN ~``); each entry has the
fields ``at`` (ISO-8601 UTC), ``actor``, ``action``, ``target`` and ``detail`` (JSON text), and
its stream id is the entry's ``id``. An :class:`Audit` describes the entry a caller wants
written with its change, in one of two ways:

- **Inside a store script** (the change is a Lua call): the script receives
  :meth:`Audit.argv` as one argument and calls ``audit(ARGV[n], extra)`` from ``lua/lib.lua`` on
  the path that makes the change — so a refused change (409, 404) writes nothing, and an
  accepted one never lacks its entry. ``extra`` adds what only the script knows (the state the
  task left, how many DLQ entries went).
- **Beside plain commands** (the change is a few writes): queue them and :meth:`Audit.add` on
  one ``MULTI`` pipeline (``client.pipeline(transaction=True)``); the entry is appended by the
  ``audit`` script inside the same ``EXEC`` (stamped on Redis's clock, like every script)::

      pipe = client.pipeline(transaction=True)
      pipe.hset(keys.gates(), keys.worker_gate(hostname), when)
      audit.add(pipe, scripts)
      pipe.execute()

Actors (who): the JWT's ``sub``, ``key:<first 8 hex of the API key's SHA-256>``, or
``anonymous`` with auth off; ``system`` is never written (the service's own housekeeping —
retention sweeps, worker recovery — is not audited). Actions: ``worker.pause``,
``worker.resume``, ``queue.pause``, ``queue.resume``, ``dlq.retry``, ``dlq.clear``,
``limits.set``, ``limits.delete``, ``task.cancel``, ``task.purge``, ``task.retry``,
``task.patch``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from . import keys, model
from .scripts import Scripts

DEFAULT_AUDIT_MAXLEN = 100_000


@dataclass(frozen=True)
class Audit:
    """The entry one mutation is recorded with."""

    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    maxlen: int = DEFAULT_AUDIT_MAXLEN

    def argv(self) -> str:
        """The one script argument ``lib.lua``'s ``audit()`` reads: a JSON array of strings
        ``[actor, action, target, detail JSON, maxlen]`` (strings survive Lua's cjson exactly)."""
        return json.dumps(
            [self.actor, self.action, self.target, model.dumps(self.detail), str(self.maxlen)]
        )

    def add(self, pipe: Any, scripts: Scripts) -> None:
        """Queue the entry on ``pipe`` (a ``MULTI`` pipeline holding the change itself)."""
        scripts.run("audit", [], self.argv(), client=pipe)


def argv(audit: Audit | None) -> str:
    """:meth:`Audit.argv`, or ``""`` (no entry) for changes nobody asked to audit."""
    return audit.argv() if audit is not None else ""


class AuditLog:
    """Reads the audit log (the writers are the audited changes themselves)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def page(self, count: int, after: str | None) -> tuple[list[dict[str, Any]], int]:
        """Entries oldest first (newest last) after entry id ``after`` (exclusive), and the
        log's size: ``[{"id", "at", "actor", "action", "target", "detail"}]``."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(keys.audit(), min=f"({after}" if after else "-", count=count)
        pipe.xlen(keys.audit())
        entries, size = pipe.execute()
        return [_entry(entry_id, fields) for entry_id, fields in entries], size


def _entry(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return {
        "id": entry_id,
        "at": fields.get("at", ""),
        "actor": fields.get("actor", ""),
        "action": fields.get("action", ""),
        "target": fields.get("target", ""),
        "detail": json.loads(fields.get("detail") or "{}"),
    }
