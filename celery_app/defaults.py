"""Limits that several places share, each beside the rule it obeys.

Read by the API schemas (defaults and bounds of ``timeout`` and ``max_retries``), the upload
form, the direct-Celery path (``delay()``/``send_task`` without limits), the message builder
(the hard time limit follows the soft one) and the Celery configuration (the visibility
timeout must outlast the longest possible execution). Change a value here and every one of
them follows.
"""

from __future__ import annotations

#: A task's soft time limit when the caller gives none (seconds).
DEFAULT_TIMEOUT_SECONDS = 300
#: The longest soft time limit a caller may ask for (seconds): one day.
MAX_TIMEOUT_SECONDS = 86_400
#: Retries after the first execution when the caller gives none (Celery's meaning: at most
#: ``1 + max_retries`` executions).
DEFAULT_MAX_RETRIES = 3
#: The most retries a caller may ask for.
MAX_RETRIES = 100
#: How long an ``Idempotency-Key`` maps to its first task (seconds).
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
#: Slack between the longest hard time limit and Celery's visibility timeout (seconds).
VISIBILITY_MARGIN_SECONDS = 3600


def hard_time_limit_seconds(timeout: int, grace_seconds: int) -> int:
    """The hard time limit (the pool child is killed) of an execution with soft limit
    ``timeout``: ``grace_seconds`` (``HARD_TIMEOUT_GRACE_SECONDS``) later."""
    return timeout + grace_seconds


def visibility_timeout_seconds(grace_seconds: int) -> int:
    """Celery's ``visibility_timeout``: above the longest hard time limit, so kombu never
    redelivers a task that is still running (lost workers are found by heartbeat, sooner)."""
    return hard_time_limit_seconds(MAX_TIMEOUT_SECONDS, grace_seconds) + VISIBILITY_MARGIN_SECONDS
