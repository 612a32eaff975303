"""What views reach for: settings and ``celery_app``'s Redis nouns, found on the current app.

Views reach Redis only through these nouns; none builds a key.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from celery_app import TaskqueueCelery
from celery_app.audit import AuditLog
from celery_app.dlq import DeadLetters
from celery_app.limits import Limits
from celery_app.listing import Listing
from celery_app.runtime import Runtime
from celery_app.settings import Settings
from celery_app.store import Store
from celery_app.workers import Workers

from .hub import Hub


@dataclass(frozen=True)
class Services:
    """The service objects one Flask app uses."""

    settings: Settings
    celery: TaskqueueCelery


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["taskqueue"]


def runtime() -> Runtime:
    """The current process's Redis nouns (created on first use after a fork)."""
    return services().celery.runtime


def store() -> Store:
    """Tasks and their transitions."""
    return runtime().store


def dead_letters() -> DeadLetters:
    """The dead-letter queue."""
    return runtime().dead_letters


def listing() -> Listing:
    """Pages, statistics and queue depths."""
    return runtime().listing


def audit_log() -> AuditLog:
    """The audit log (read side; entries are written with each change)."""
    return runtime().audit_log


def limits() -> Limits:
    """Limits per task type."""
    return runtime().limits


def workers() -> Workers:
    """The worker registry and pause flags."""
    return runtime().workers


def hub() -> Hub:
    """The current process's event hub (one stream reader per process)."""
    return current_app.extensions["taskqueue_hub"]
