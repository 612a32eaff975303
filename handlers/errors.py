"""Exceptions a handler may raise to steer what happens next."""


class PermanentError(Exception):
    """A failure that retrying cannot fix: the task goes straight to the dead-letter queue."""
