"""Task handlers: plain functions registered under a type name.

A handler takes the task's payload as keyword arguments and returns a JSON-serialisable result.
It knows nothing of Flask or Celery. Its signature is its payload schema (checked at submit:
required parameters, annotated JSON types). It may report progress with
:func:`handlers.progress.report` and raise :class:`handlers.errors.PermanentError` for failures a
retry cannot fix. Each registered type becomes a Celery task of the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[..., Any]

REGISTRY: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of task type ``name``."""

    def register(fn: Handler) -> Handler:
        if name in REGISTRY and REGISTRY[name] is not fn:
            raise ValueError(f"task type {name!r} registered twice")
        REGISTRY[name] = fn
        return fn

    return register


def load() -> dict[str, Handler]:
    """Import the shipped handler modules (registering them) and return the registry."""
    from . import basic, email, files  # noqa: F401

    return REGISTRY
