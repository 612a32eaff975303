"""Progress of followed tasks: live bars on a terminal, one plain line per change when piped.

A :class:`TaskView` is what is known of one task (from its envelope, then from its events); a
display shows views as they change. Both displays show the same things: state, percent, the
handler's progress message and the elapsed time of the current execution.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn
from rich.text import Text

from .render import STATE_STYLES, duration, parse_time, write_line

FINAL_STATES = frozenset({"completed", "failed", "dead_letter", "cancelled"})


@dataclass
class TaskView:
    """One followed task. ``started``/``ended`` are epoch seconds of the current execution."""

    id: str
    type: str = ""
    state: str = "pending"
    progress: int = 0
    message: str = ""
    started: float | None = None
    ended: float | None = None

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
        if self.state in {"failed", "dead_letter", "retrying"} and envelope.get("error"):
            self.message = envelope["error"]
        self.started = epoch(envelope.get("started_at"))
        self.ended = None
        if self.state in FINAL_STATES:
            self.ended = epoch(envelope.get("completed_at"))
        elif self.state != "running" and self.started is not None:
            self.ended = epoch(envelope.get("updated_at"))  # waiting to run again

    def apply_event(self, event: dict[str, Any]) -> None:
        """Take an event's news (``data`` carries state and progress, §6)."""
        data = event.get("data") or {}
        kind = event.get("type", "")
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
