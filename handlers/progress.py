"""Progress reporting for handlers, without a dependency on whoever runs them.

The task runner installs a reporter for the duration of a handler call; outside a task (a plain
function call, a unit test) :func:`report` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Reporter = Callable[[int, str | None], None]

_reporter: ContextVar[Reporter | None] = ContextVar("progress_reporter", default=None)


def report(percent: float, message: str | None = None) -> None:
    """Tell whoever runs this handler how far it got (0–100)."""
    reporter = _reporter.get()
    if reporter is not None:
        reporter(max(0, min(100, int(percent))), message)


@contextmanager
def reporting_to(reporter: Reporter) -> Iterator[None]:
    """Route :func:`report` calls to ``reporter`` inside the block."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
