"""The script runner: the store's Lua scripts, loaded once per client and called by name.

Each script is ``lua/lib.lua`` (shared helpers, the key names of :mod:`celery_app.keys` and
the index rules) followed by ``lua/<name>.lua``. Every call passes the same leading arguments
so the scripts agree on them:

======  ==================================================================
ARGV    meaning
======  ==================================================================
1       key prefix (:data:`celery_app.keys.PREFIX`)
2       empty (reserved)
3       empty (reserved)
4       the event stream's approximate cap (``EVENTS_MAXLEN``)
5…      the script's own arguments (its header comment lists them)
======  ==================================================================

"Now" is never an argument: ``lib.lua`` reads Redis's ``TIME`` once per call, and every
timestamp and index score the call writes is that instant. Every due time, retention cutoff
and expiry is compared on Redis's clock, so a host whose clock is off changes nothing.

redis-py's :class:`~redis.commands.core.Script` sends ``EVALSHA`` and falls back to ``EVAL``
on ``NOSCRIPT`` (after a flush or a failover). Registering does no I/O.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis

from . import keys

#: Every script under ``lua/`` besides ``lib.lua``.
NAMES = (
    "submit",
    "list",
    "fold_metrics",
    "claim",
    "progress",
    "finish",
    "cancel",
    "purge",
    "requeue",
    "promote",
    "dlq_clear",
    "worker_beat",
    "worker_left",
    "patch",
    "republish",
    "queue_pause",
    "webhook_claim",
    "webhook_record",
    "audit",
    "throttle",
    "upgrade",
)


def load(client: redis.Redis) -> dict[str, Any]:
    """Every script registered on ``client`` (no round trip), by name."""
    folder = resources.files(__package__).joinpath("lua")
    lib = folder.joinpath("lib.lua").read_text()
    return {
        name: client.register_script(lib + "\n" + folder.joinpath(f"{name}.lua").read_text())
        for name in NAMES
    }


class Scripts:
    """Runs the store's scripts with the common arguments; one per Redis client."""

    def __init__(self, client: redis.Redis, events_maxlen: int) -> None:
        self.events_maxlen = events_maxlen
        self._scripts = load(client)

    def __getitem__(self, name: str) -> Any:
        """The registered script itself (for callers that batch it in a pipeline)."""
        return self._scripts[name]

    def run(
        self,
        name: str,
        script_keys: list[str],
        *args: Any,
        client: Any = None,
    ) -> Any:
        """Run script ``name``; ``args`` become ``ARGV[5]`` onwards.

        ``client`` may be a pipeline, to compose the call with other writes.
        """
        return self._scripts[name](keys=script_keys, args=self.arguments(*args), client=client)

    def arguments(self, *args: Any) -> list[Any]:
        """The full ``ARGV`` of a call: the common arguments, then ``args``."""
        return [keys.PREFIX, "", "", self.events_maxlen, *args]

    def run_for_task(self, name: str, task_id: str, *args: Any) -> Any:
        """Run a script about one task: ``KEYS[1]`` is its envelope, ``ARGV[5]`` its id."""
        return self.run(name, [keys.task(task_id)], task_id, *args)
