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

"Now" is never an argument: ``lib.lua``'s ``begin`` reads Redis's ``TIME`` once per call, and
every timestamp and index score the call writes is that instant. Every due time, retention
cutoff and expiry is compared on Redis's clock, so a host whose clock is off changes nothing.

Two ways to run them, one body each:

- :data:`FUNCTIONS` — the worker's per-task scripts — are functions ``tq_<digest>_<name>`` of
  one function library (``FUNCTION LOAD`` once, ``FCALL`` per call): ``lib.lua``'s top level,
  its helpers and tables, is built once when the library loads instead of on every call.
- The rest run with ``EVALSHA`` (redis-py's :class:`~redis.commands.core.Script`): some of them
  go inside ``MULTI`` pipelines (a batch) and :func:`~celery_app.replication.acknowledged`'s
  ``WAIT`` pipeline, which load them first.

Both are loaded on first use, not at registration (no I/O then). A Redis that lost them (a
restart without persistence, ``SCRIPT FLUSH``, ``FUNCTION FLUSH``; a new master after a
failover lacks the script cache, while functions replicate) answers ``NOSCRIPT`` or ``Function
not found``, and the call loads them and is sent again. The library's name carries a digest of
its code, so processes of two releases (a rolling upgrade) each call their own; an earlier
release's library stays in Redis, a few kilobytes, until ``FUNCTION DELETE``.

Functions need Redis 7; on Redis 6.2 (no ``FCALL``: ``unknown command``), or for an ACL user
that may not run ``FCALL`` or ``FUNCTION LOAD`` (``NOPERM``), the first call finds out and
:data:`FUNCTIONS` run with ``EVALSHA`` like the rest, with the same results.

What Redis refuses differs in one way. A function that may write (all of :data:`FUNCTIONS`) is
refused before it starts while Redis refuses writes — ``OOM`` at ``maxmemory``, ``READONLY``
on a replica, ``MISCONF``, ``NOREPLICAS`` — so nothing of it happens; an ``EVAL`` script runs
until its first refused write (the scripts make their checks, then write: see ``audit()`` in
``lib.lua``). Either way the caller gets the refusal's error.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

import redis

from . import keys

#: The worker's per-task scripts, run as functions of one library (``FCALL``).
FUNCTIONS = ("claim", "progress", "finish")

#: The other scripts under ``lua/`` (besides ``lib.lua``), run with ``EVALSHA``.
SCRIPTS = (
    "submit",
    "list",
    "fold_metrics",
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


def _source(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


def load(client: redis.Redis) -> dict[str, Any]:
    """Every script registered on ``client`` as an ``EVAL`` script (no round trip), by name:
    :data:`SCRIPTS`, and :data:`FUNCTIONS` for a Redis without functions."""
    lib = _source("lib")
    return {
        name: client.register_script(f"{lib}\nbegin(ARGV)\n{_source(name)}")
        for name in (*SCRIPTS, *FUNCTIONS)
    }


def library_code() -> tuple[str, str]:
    """``(library name, code)`` of the function library holding :data:`FUNCTIONS`: ``lib.lua``,
    then each script as the body of a function ``<library name>_<script>``. The name is
    ``tq_`` and 12 hex digits of the code's SHA-1, so a changed script is a new library."""
    lib = _source("lib")
    bodies = [(name, _source(name)) for name in FUNCTIONS]
    digest = hashlib.sha1(lib.encode())
    for name, body in bodies:
        digest.update(f"\0{name}\0{body}".encode())
    library = f"tq_{digest.hexdigest()[:12]}"
    registrations = "".join(
        f"\nredis.register_function('{library}_{name}', function(KEYS, ARGV)\n"
        f"begin(ARGV)\n{body}\nend)\n"
        for name, body in bodies
    )
    return library, f"#!lua name={library}\n{lib}{registrations}"


class FunctionsUnsupported(Exception):
    """Redis offers no functions to this client: it has none (before 7.0: ``unknown command
    'FCALL'``), or its ACL user may not run ``FCALL`` or ``FUNCTION LOAD`` (``NOPERM``)."""


def _not_offered(exc: redis.ResponseError) -> bool:
    """Whether ``exc`` says the command itself is unknown or not allowed to this user (not a
    key permission, which ``EVALSHA`` would meet as well)."""
    text = str(exc).lower()
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return "command" in text
    return text.startswith(("unknown command", "unknown subcommand"))


class Library:
    """The function library (:func:`library_code`) on one client, loaded on first use."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.name, self.code = library_code()
        self._functions = {name: f"{self.name}_{name}" for name in FUNCTIONS}
        #: False once Redis answered that it offers no functions (Redis 6.2, an ACL).
        self.available = True

    def call(self, name: str, script_keys: list[str], args: list[Any]) -> Any:
        """``FCALL <library>_<name>``; a Redis that lacks the library gets it
        (``FUNCTION LOAD``) and the call again. Raises :class:`FunctionsUnsupported` (and
        sets :attr:`available` false) when Redis offers no functions to this client, else
        what Redis answers."""
        function = self._functions[name]
        try:
            return self.client.fcall(function, len(script_keys), *script_keys, *args)
        except redis.ResponseError as exc:
            self._check_offered(exc)
            if not str(exc).startswith("Function not found"):
                raise
        self.load()
        return self.client.fcall(function, len(script_keys), *script_keys, *args)

    def load(self) -> None:
        """``FUNCTION LOAD`` the library (one that is already there is left as it is)."""
        try:
            self.client.function_load(self.code)
        except redis.ResponseError as exc:
            self._check_offered(exc)
            if "already exists" not in str(exc):
                raise

    def _check_offered(self, exc: redis.ResponseError) -> None:
        if _not_offered(exc):
            self.available = False
            raise FunctionsUnsupported(str(exc)) from exc


class Scripts:
    """Runs the store's scripts with the common arguments; one per Redis client."""

    def __init__(self, client: redis.Redis, events_maxlen: int) -> None:
        self.events_maxlen = events_maxlen
        self._scripts = load(client)
        self.library = Library(client)

    def __getitem__(self, name: str) -> Any:
        """The registered script itself (for callers that batch it in a pipeline); only
        :data:`SCRIPTS` (a function is not called inside pipelines)."""
        return self._scripts[name]

    def run(
        self,
        name: str,
        script_keys: list[str],
        *args: Any,
        client: Any = None,
    ) -> Any:
        """Run script ``name``; ``args`` become ``ARGV[5]`` onwards.

        ``client`` may be a pipeline, to compose the call with other writes (only for
        :data:`SCRIPTS`: raises ``ValueError`` for one of :data:`FUNCTIONS`).
        """
        if name in FUNCTIONS and self.library.available:
            if client is not None:
                raise ValueError(f"{name} runs as a function, not inside a pipeline")
            try:
                return self.library.call(name, script_keys, self.arguments(*args))
            except FunctionsUnsupported:
                pass  # Redis 6.2: the same script with EVALSHA, from now on
        return self._scripts[name](keys=script_keys, args=self.arguments(*args), client=client)

    def arguments(self, *args: Any) -> list[Any]:
        """The full ``ARGV`` of a call: the common arguments, then ``args``."""
        return [keys.PREFIX, "", "", self.events_maxlen, *args]

    def run_for_task(self, name: str, task_id: str, *args: Any) -> Any:
        """Run a script about one task: ``KEYS[1]`` is its envelope, ``ARGV[5]`` its id."""
        return self.run(name, [keys.task(task_id)], task_id, *args)
