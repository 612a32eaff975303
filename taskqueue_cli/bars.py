"""Progress of followed tasks: live bars on a terminal, one plain line per change when piped.

A :class:`TaskView` is what is known of one task (from its envelope, then from its events); a
display shows views as they change. An event the envelope already reflects is not applied (see
:meth:`TaskView.reflects`), so a view never goes back to an older state. Both displays show the
same things: state, percent, the handler's progress message and the elapsed time of the current
execution.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn
from rich.text import Text

from .render import STATE_STYLES, duration, parse_time, write_line

FINAL_STATES = frozenset({"completed", "failed", "dead_letter", "cancelled"})


@dataclass
class TaskView:
    """One followed task. ``started``/``ended`` are epoch seconds of the current execution;
    ``as_of_ms`` is the envelope's ``updated_at`` in epoch milliseconds (``None`` before one
    was read)."""

    id: str
    type: str = ""
    state: str = "pending"
    progress: int = 0
    message: str = ""
    started: float | None = None
    ended: float | None = None
    as_of_ms: int | None = None

    @classmethod
    def of(cls, envelope: dict[str, Any]) -> TaskView:
        view = cls(envelope["id"])
        view.apply_envelope(envelope)
        return view

    def apply_envelope(self, envelope: dict[str, Any]) -> None:
        """Take everything from the task's envelope (the truth, §2)."""
        self.type = envelope.get("type", self.type)
        self.state = envelope.get("state", self.state)
        self.progress = int(envelope.get("progress") or 0)
        self.message = envelope.get("progress_message") or ""
        self.as_of_ms = epoch_ms(envelope.get("updated_at"))
        if self.state in {"failed", "dead_letter", "retrying"} and envelope.get("error"):
            self.message = envelope["error"]
        self.started = epoch(envelope.get("started_at"))
        self.ended = None
        if self.state in FINAL_STATES:
            self.ended = epoch(envelope.get("completed_at"))
        elif self.state != "running" and self.started is not None:
            self.ended = epoch(envelope.get("updated_at"))  # waiting to run again

    def reflects(self, event: dict[str, Any]) -> bool:
        """Whether the envelope this view was read from already reflects ``event`` (a ``/ws``
        frame): its id's milliseconds are before the envelope's ``updated_at``.

        Exact, not a guess: the Lua call that changes a task stamps ``updated_at`` with Redis's
        ``TIME`` and appends its event (id from the same clock, never earlier) in one atomic
        step, so an event appended after the read has an id at or after ``updated_at``, and one
        strictly before it was appended before the call that wrote the envelope. An event in
        ``updated_at``'s own millisecond is applied: it is the change the envelope shows (no
        change to the view) or one after the read, never to be skipped; only two changes of
        one task within one millisecond could show the older for the moment before the
        envelope's own event, replayed next, restores it."""
        if self.as_of_ms is None:
            return False
        event_id = str(event.get("id") or "")
        ms = event_id.partition("-")[0]
        return ms.isdigit() and int(ms) < self.as_of_ms

    def apply_event(self, event: dict[str, Any]) -> bool:
        """Take an event's news (``data`` carries state and progress, §6); ``False`` (and no
        change) for an event the envelope already reflects (:meth:`reflects`), and for a
        worker's ``task.failed`` (still ``running``): the ``task.retrying`` or
        ``task.dead_letter`` of the same transition follows at once, with the error and the
        state the failure led to."""
        if self.reflects(event):
            return False
        data = event.get("data") or {}
        kind = event.get("type", "")
        if kind == "task.failed" and data.get("state") == "running":
            return False
        at = epoch(event.get("timestamp"))
        self.type = data.get("type", self.type)
        self.state = data.get("state", self.state)
        self.progress = int(data.get("progress") or 0)
        if kind == "task.started":
            self.started, self.ended, self.message = at, None, ""
        elif kind == "task.progress":
            self.message = data.get("message") or ""
        elif data.get("error"):
            self.message = data["error"]
        if self.state != "running" and self.ended is None:
            self.ended = at  # the execution is over (final, or waiting to run again)
        return True

    @property
    def elapsed(self) -> float | None:
        """Seconds the current (or last) execution has run; ``None`` before it started."""
        if self.started is None:
            return None
        return max(0.0, (self.ended or time.time()) - self.started)

    @property
    def short_id(self) -> str:
        """A shorter id for narrow bars: a UUID's first 8 characters, an upload id's hex tail."""
        if self.id.startswith("task-") and self.id.count("-") == 2:
            return self.id.rsplit("-", 1)[1]
        return self.id if len(self.id) <= 12 else self.id[:8]


def epoch(iso: str | None) -> float | None:
    moment = parse_time(iso)
    return moment.timestamp() if moment else None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(iso: str | None) -> int | None:
    """An API timestamp as whole epoch milliseconds (exact, no float rounding), or ``None``."""
    moment = parse_time(iso)
    if moment is None or moment.tzinfo is None:
        return None
    return (moment - EPOCH) // timedelta(milliseconds=1)


class ElapsedColumn(ProgressColumn):
    """The execution's elapsed time, from the task's own start (not from when we looked)."""

    def render(self, task: Any) -> Text:
        return Text(duration(task.fields["view"].elapsed), style="progress.elapsed")


class StateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        state = task.fields["view"].state
        return Text(state, style=STATE_STYLES.get(state, ""))


class LiveBars:
    """Rich progress bars on a terminal. ``keep`` leaves finished bars in place; otherwise a
    finished task becomes one line above the bars (``watch`` with no ids runs for hours)."""

    def __init__(self, console: Console, keep: bool = True) -> None:
        self.keep = keep
        self.progress = Progress(
            TextColumn("{task.fields[label]}", markup=False),
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            StateColumn(),
            ElapsedColumn(),
            TextColumn("{task.fields[view].message}", markup=False),
            console=console,
            refresh_per_second=8,
        )
        self.ids: dict[str, Any] = {}

    def __enter__(self) -> LiveBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()  # shows the cursor again, also on Ctrl-C

    def show(self, view: TaskView) -> None:
        if view.id not in self.ids:
            label = f"{view.short_id} {view.type}"
            self.ids[view.id] = self.progress.add_task("", total=100, label=label, view=view)
        self.progress.update(self.ids[view.id], completed=view.progress, view=view)

    def done(self, view: TaskView) -> None:
        self.show(view)
        if not self.keep:
            mark = "✔" if view.state == "completed" else "✘"
            line = Text(f"{mark} {view.id} {view.type} ")
            line.append(view.state, style=STATE_STYLES.get(view.state, ""))
            line.append(f" {duration(view.elapsed)} {view.message}".rstrip())
            self.progress.remove_task(self.ids.pop(view.id))  # before printing re-renders
            self.progress.console.print(line)

    def notice(self, text: str) -> None:
        self.progress.console.print(Text(text, style="yellow"))


class Lines:
    """Plain lines (piped output): ``id type state percent elapsed message``, one per change."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[str, int, str]] = {}

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def show(self, view: TaskView) -> None:
        key = (view.state, view.progress, view.message)
        if self.last.get(view.id) == key:
            return
        self.last[view.id] = key
        fields = [view.id, view.type, view.state, f"{view.progress}%", duration(view.elapsed)]
        write_line("  ".join(fields + ([" ".join(view.message.split())] if view.message else [])))

    def done(self, view: TaskView) -> None:
        self.show(view)
        self.last.pop(view.id, None)

    def notice(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


class Silent(Lines):
    """No display (``--json``: the frames themselves are the output)."""

    def show(self, view: TaskView) -> None:
        return None
