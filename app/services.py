"""What views reach for: settings and the store, found on the current app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from celery_app import TaskqueueCelery
from celery_app.settings import Settings
from celery_app.store import Store


@dataclass(frozen=True)
class Services:
    """The service objects one Flask app uses."""

    settings: Settings
    celery: TaskqueueCelery


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["taskqueue"]


def store() -> Store:
    """The current process's envelope store."""
    return services().celery.runtime.store
