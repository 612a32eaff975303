"""Each shipped handler's Celery task, for Python programs that publish through Celery::

    from celery_app.tasks import echo, sleep

    result = echo.delay(text="hi")            # kwargs are the payload
    sleep.apply_async(kwargs={"seconds": 2}, queue="high")

A direct publish gets the same envelope, ``task.submitted`` event and metrics as an HTTP
submit, and its keyword arguments are checked against the handler's signature first: a
payload the API would refuse raises :class:`~celery_app.payloads.InvalidPayload` here and
nothing is queued. The tasks belong to :data:`celery_app.app` (settings from the
environment); :func:`task` finds any registered type by name, ``file.process`` included.
"""

from __future__ import annotations

from celery import Task

from . import app


def task(name: str) -> Task:
    """The Celery task of handler type ``name`` (``KeyError`` for an unknown type)."""
    return app.tasks[name]


echo = task("echo")
sleep = task("sleep")
fail = task("fail")
email = task("email")
file_process = task("file.process")

__all__ = ["echo", "email", "fail", "file_process", "sleep", "task"]
