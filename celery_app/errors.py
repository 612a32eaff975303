"""The service's error vocabulary, shared by both processes; ``app/errors.py`` maps it to HTTP."""

from __future__ import annotations


class TaskqueueError(Exception):
    """Base class: ``status`` is the HTTP status the web layer answers with."""

    status = 500


class InvalidRequest(TaskqueueError):
    """The client sent something the contract rejects (names the field)."""

    status = 400


class TaskNotFound(TaskqueueError):
    """No envelope with that id."""

    status = 404

    def __init__(self, message: str = "task not found") -> None:
        super().__init__(message)


class IdempotencyMismatch(TaskqueueError):
    """An ``Idempotency-Key`` repeated with a different request (as Stripe answers it)."""

    status = 422


class InvalidState(TaskqueueError):
    """The task's state does not allow the operation."""

    status = 409

    def __init__(self, message: str, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state
