"""Handlers for smoke tests and drills: ``echo``, ``sleep`` and ``fail``."""

from __future__ import annotations

import os
import signal
import time
from typing import Annotated, Any

from marshmallow.validate import Range

from . import handler
from .errors import PermanentError
from .progress import report

MAX_SLEEP_SECONDS = 3600.0


@handler("echo")
def echo(**payload: Any) -> dict[str, Any]:
    """Return the payload unchanged."""
    return payload


@handler("sleep")
def sleep(
    seconds: Annotated[float, Range(0, MAX_SLEEP_SECONDS)] = 1.0,
    steps: Annotated[int, Range(1, 100)] = 10,
    stubborn: bool = False,
) -> dict[str, float]:
    """Sleep for ``seconds`` in ``steps`` slices, reporting progress (``step i of n``) after each.

    The limits in the signature are checked before the task is queued (HTTP submit, direct
    Celery publish). ``stubborn`` ignores exceptions raised into it (such as a soft time
    limit), like code stuck in a C call would: a drill for the hard time limit.
    """
    steps = int(steps)  # a JSON Schema integer may arrive as 5.0
    started = time.monotonic()
    deadline = started + seconds
    for step in range(1, steps + 1):
        while True:
            try:
                time.sleep(max(0.0, min(deadline, started + seconds * step / steps)
                               - time.monotonic()))
                break
            except Exception:
                if not stubborn:
                    raise
        report(100 * step / steps, message=f"step {step} of {steps}")
    return {"slept": round(time.monotonic() - started, 3)}


@handler("fail")
def fail(message: str = "failed on purpose", permanent: bool = False,
         kill_process: bool = False) -> None:
    """Raise an error with ``message``; ``permanent`` makes it non-retryable.

    ``kill_process`` instead kills the process running it (a drill for poison tasks).
    """
    if kill_process:
        os.kill(os.getpid(), signal.SIGKILL)
    if permanent:
        raise PermanentError(message)
    raise RuntimeError(message)
