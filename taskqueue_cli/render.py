"""What a command prints: the API's JSON for scripts, tables for people.

Three forms, chosen per command run:

- ``--json``: the response body exactly as the service sent it (one document per line);
- stdout is a terminal: Rich tables (colour, box drawing, widths from the terminal);
- stdout is a pipe or file: plain lines, columns aligned with spaces, no escape codes ever —
  ``grep``/``awk`` friendly and safe in logs. ``NO_COLOR`` and ``TERM=dumb`` are honoured by
  Rich on a terminal too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Colours of the state words on a terminal.
STATE_STYLES = {
    "completed": "green",
    "running": "cyan",
    "pending": "yellow",
    "scheduled": "blue",
    "retrying": "magenta",
    "failed": "red",
    "dead_letter": "bold red",
    "cancelled": "dim",
    "idle": "green",
    "busy": "cyan",
    "paused": "yellow",
    "pausing": "yellow",
    "resuming": "yellow",
}

#: Columns of free text: they take the width left over and wrap; the others never do.
FREE_TEXT = {"value", "error", "queues", "message"}


class Output:
    """stdout (and stderr for notes) of one command run."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self.console = Console(highlight=False)
        self.errors = Console(stderr=True, highlight=False)

    @property
    def terminal(self) -> bool:
        """Whether stdout is a terminal that gets tables and live bars."""
        return self.console.is_terminal and not self.console.is_dumb_terminal

    def raw(self, text: str) -> None:
        """A response body, exactly as the service sent it, on its own line."""
        write_line(text.strip())

    def line(self, text: str) -> None:
        """One line of plain text (no markup interpreted, no wrapping when piped)."""
        if self.terminal:
            self.console.print(Text(text))
        else:
            write_line(text)

    def note(self, text: str, style: str = "dim") -> None:
        """A message for the person on stderr (never mixed into stdout's data)."""
        if self.errors.is_terminal:
            self.errors.print(Text(text, style=style))
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def value(self, value: Any) -> None:
        """A JSON value (a task's result): indented on a terminal, one line when piped."""
        if self.terminal:
            self.console.print_json(json.dumps(value))
        else:
            write_line(json.dumps(value, separators=(",", ":")))

    def table(
        self, headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
    ) -> None:
        """Rows under headers: a Rich table on a terminal, aligned plain columns otherwise.
        A cell naming a state is coloured on a terminal."""
        cells = [[cell_text(c) for c in row] for row in rows]
        if not self.terminal:
            write_line(aligned([h.upper() for h in headers], cells))
            return
        table = Table(
            box=box.SIMPLE_HEAD,
            title=title,
            title_justify="left",
            pad_edge=False,
            show_edge=False,
            collapse_padding=True,
        )
        for header in headers:  # short values never wrap; free text folds, then wraps
            free = header in FREE_TEXT
            table.add_column(
                header.upper(),
                no_wrap=not free,
                overflow="fold" if free else "ellipsis",
                ratio=1 if free else None,
            )
        for row in cells:
            table.add_row(*(Text(c, style=STATE_STYLES.get(c, "")) for c in row))
        self.console.print(table)

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        """``name  value`` lines (one object shown by name)."""
        self.table(("field", "value"), [(name, value) for name, value in pairs])


def write_line(text: str) -> None:
    """``text`` and a newline on stdout, flushed (so a pipe sees it at once)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def aligned(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain columns separated by two spaces, padded to the widest cell (the last unpadded)."""
    if not rows:
        return "  ".join(headers)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def cell_text(value: Any) -> str:
    """A cell as text: ``-`` for nothing, JSON for structures, one line always."""
    if value is None or value == "":
        return "-"
    if isinstance(value, dict | list | bool):
        return json.dumps(value, separators=(",", ":"))
    return " ".join(str(value).split())


def parse_time(iso: str | None) -> datetime | None:
    """An API timestamp (ISO-8601 UTC with ``Z``), or ``None``."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(iso: str | None, now: datetime | None = None) -> str:
    """How long ago ``iso`` was, kubectl style: ``42s``, ``5m``, ``3h``, ``2d``."""
    moment = parse_time(iso)
    if moment is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(seconds: float | None) -> str:
    """Elapsed time: ``0.8s``, ``12.3s``, ``4:05``, ``1:02:03``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
