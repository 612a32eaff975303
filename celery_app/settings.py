"""Service settings, read from the environment once, shared by the web and worker processes.

Every tunable is a field of :class:`Settings` with its default; names carry their unit.
``Settings.from_env()`` is the only place that reads ``os.environ``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from .defaults import visibility_timeout_seconds

MIB = 1024 * 1024
#: An upload stalled this long between two chunks may be reaped: no shorter, or a slow but
#: live client's partial file would be.
MIN_UPLOAD_ORPHAN_SECONDS = 60.0


def _bool(value: str) -> bool:
    word = value.strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off"}:
        return False
    raise ValueError(value)  # a typo must not silently switch a feature (auth) off


def _float(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


@dataclass(frozen=True)
class Settings:
    """Configuration of one deployment; both processes must agree on it."""

    redis_url: str = "redis://localhost:6379/0"
    port: int = 8080
    auth_enabled: bool = False
    api_keys: str = ""
    jwt_secret_key: str = ""
    upload_dir: str = "./uploads"
    max_upload_bytes: int = 100 * MIB
    #: Age after which an upload directory without a task, or a partial upload file, is
    #: deleted by the maintenance worker (:func:`celery_app.uploads.orphans`).
    upload_orphan_seconds: float = 3600.0
    max_payload_bytes: int = 1 * MIB
    task_retention_seconds: int = 7 * 24 * 3600
    retry_backoff_seconds: float = 2.0
    retry_backoff_max_seconds: float = 300.0
    worker_heartbeat_seconds: float = 2.0
    #: A task ``pending`` this long whose Celery message is in no queue and held by no worker
    #: is re-published (its message was lost, e.g. when Redis refused kombu's write).
    lost_message_grace_seconds: float = 30.0
    #: Events kept in the stream for replay (approximate cap, XADD MAXLEN ~).
    events_maxlen: int = 100_000
    #: Seconds a hard time limit waits after the soft one (``timeout``) before killing the child.
    hard_timeout_grace_seconds: int = 10
    #: Redis socket timeouts (one retry): a dead Redis must turn into a 503 well inside 2 s.
    redis_socket_timeout_seconds: float = 0.75
    #: Redis Sentinel addresses (``host:port,host:port,…``); with :attr:`redis_sentinel_master`
    #: set, every client finds the current master through them and ``REDIS_URL`` supplies only
    #: the database number and password.
    redis_sentinels: str = ""
    #: The master's name as the sentinels monitor it (``sentinel monitor <name> …``).
    redis_sentinel_master: str = ""
    #: Replicas that must acknowledge a submit (Redis ``WAIT``) before it answers 201; 0 = none.
    redis_min_replicas: int = 0
    #: How long a submit waits for those acknowledgements before answering 503 (milliseconds).
    redis_wait_timeout_ms: int = 500
    smtp_url: str = ""
    #: How long a pause/resume request waits for the workers to confirm before answering 202.
    pause_confirm_seconds: float = 5.0
    #: HMAC-SHA256 key for ``X-Taskqueue-Signature`` on completion webhooks (unset: unsigned).
    webhook_secret: str = ""
    #: Delivery attempts (requests) per webhook before its callback state is ``failed``.
    webhook_max_attempts: int = 8
    #: Connect and read timeout of one webhook request; also sizes the delivery lease.
    webhook_timeout_seconds: float = 5.0
    #: First retry's delay; doubles per attempt with jitter (x0.5-1.5), capped by the max.
    webhook_backoff_seconds: float = 2.0
    webhook_backoff_max_seconds: float = 600.0
    #: Deliver to loopback/private/link-local/multicast/reserved addresses (off: SSRF-safe).
    webhook_allow_private: bool = False
    #: Concurrent webhook requests per worker (threads in the worker's main process).
    webhook_concurrency: int = 4
    #: Entries kept in the audit log stream (approximate cap, XADD MAXLEN ~).
    audit_maxlen: int = 100_000
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``): field ``x_y`` ← ``X_Y``.

        Unset or empty variables keep the default.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            name = f.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            default = f.default
            try:
                if isinstance(default, bool):
                    values[f.name] = _bool(raw)
                elif isinstance(default, int):
                    values[f.name] = int(raw)
                elif isinstance(default, float):
                    values[f.name] = _float(raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise ValueError(f"{name}={raw!r} is not a valid {type(default).__name__}") from exc
        return cls(**values)

    def __post_init__(self) -> None:
        if bool(self.redis_sentinels) != bool(self.redis_sentinel_master):
            raise ValueError("REDIS_SENTINELS and REDIS_SENTINEL_MASTER must be set together")
        self.sentinel_addresses  # noqa: B018 (validates the list)
        if not self.upload_orphan_seconds >= MIN_UPLOAD_ORPHAN_SECONDS:
            raise ValueError(f"UPLOAD_ORPHAN_SECONDS must be >= {MIN_UPLOAD_ORPHAN_SECONDS:g}")
        if self.redis_min_replicas < 0 or self.redis_wait_timeout_ms <= 0:
            raise ValueError("REDIS_MIN_REPLICAS must be >= 0 and REDIS_WAIT_TIMEOUT_MS > 0")

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``REDIS_SENTINELS`` as ``[(host, port), …]`` (empty without Sentinel).

        Raises ``ValueError`` for an entry that is not ``host:port``.
        """
        addresses = []
        for entry in filter(None, (e.strip() for e in self.redis_sentinels.split(","))):
            host, sep, port = entry.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"REDIS_SENTINELS entry {entry!r} is not host:port")
            addresses.append((host.strip("[]"), int(port)))
        return addresses

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests, tools)."""
        return replace(self, **changes)

    @property
    def lease_seconds(self) -> float:
        """How long a task's lease outlives the last renewal by its executing pool child
        (renewed every ``worker_heartbeat_seconds``): three heartbeat intervals, like a
        worker's record."""
        return 3 * self.worker_heartbeat_seconds

    @property
    def visibility_timeout_seconds(self) -> int:
        """Above the longest hard time limit, so Celery never redelivers a running task.

        Lost workers are detected by heartbeat instead (much sooner).
        """
        return visibility_timeout_seconds(self.hard_timeout_grace_seconds)
