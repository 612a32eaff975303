"""Task commands: submit, upload, get, ls, cancel, retry, purge, stats, watch (contract §4, §12).

Each is one API call shown three ways (see :mod:`.render`); ``--wait`` and ``watch`` follow the
tasks over ``/ws`` (:mod:`.follow`). ``submit``/``upload`` print the new task's id (one line,
for ``ID=$(taskqueue submit echo)``); ``--wait`` then shows its bar and prints its result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from .bars import Lines, LiveBars, Silent
from .client import Client, Reply
from .follow import follow, task_path, watch_all
from .render import Output, age
from .session import EXIT_TASK_FAILED, Session, json_option, load_json, pass_session

PRIORITIES = ("low", "normal", "high", "critical", "0", "1", "2", "3")
priority_option = click.option(
    "--priority",
    type=click.Choice(PRIORITIES),
    metavar="P",
    help="low|normal|high|critical or 0-3 [low].",
)
#: ``ls --sort-by`` values: the API's ``sort_by``.
SORT_KEYS = ("created_at", "updated_at", "priority")
#: Envelope fields in the order `get` shows them; others follow in the API's order.
FIELD_ORDER = (
    "id",
    "type",
    "state",
    "status",
    "priority",
    "progress",
    "progress_message",
    "attempts",
    "max_retries",
    "timeout",
    "worker_id",
    "error",
    "created_at",
    "scheduled_at",
    "started_at",
    "next_retry_at",
    "completed_at",
    "updated_at",
)
SKIPPED_FIELDS = {"task_id", "error_message"}  # the same values under the tracker's names


def display_for(out: Output, keep: bool = True) -> Any:
    """Bars on a terminal, plain lines when piped, nothing with ``--json``."""
    if out.as_json:
        return Silent()
    return LiveBars(out.console, keep=keep) if out.terminal else Lines()


def wait_and_report(client: Client, reply: Reply, out: Output) -> int:
    """Follow a task to its final state; print its result (or its final envelope with
    ``--json``); the exit status: 0 completed, 1 failed, dead-lettered or cancelled."""
    task_id = reply.body["id"]
    with display_for(out) as display:
        final = follow(client, {task_id: reply}, display)[task_id]
    envelope = final.body
    if out.as_json:
        out.raw(final.text)
    elif envelope["state"] == "completed":
        out.value(envelope.get("result"))
    else:
        reason = envelope.get("error", "")
        out.note(f"{task_id} {envelope['state']}" + (f": {reason}" if reason else ""), "red")
    return 0 if envelope["state"] == "completed" else EXIT_TASK_FAILED


def created(out: Output, reply: Reply, wait: bool, client: Client) -> None:
    """A new task's id (or JSON), then, with ``wait``, its progress and result."""
    if reply.status == 200:
        out.note("an earlier task with this idempotency key; nothing new was queued")
    if not out.as_json:
        out.line(reply.body["id"])
    elif not wait:
        out.raw(reply.text)
    if wait:
        click.get_current_context().exit(wait_and_report(client, reply, out))


@click.command()
@click.argument("task_type", metavar="TYPE")
@click.option(
    "--payload",
    metavar="JSON|@FILE",
    help="Handler input: a JSON object, or @file (@- reads stdin).",
)
@priority_option
@click.option("--max-retries", type=int, help="Retries after a failed execution [3].")
@click.option("--timeout", type=int, help="Seconds one execution may run [300].")
@click.option("--scheduled-at", metavar="ISO-8601", help="Run at this time (UTC with Z).")
@click.option("--metadata", metavar="JSON|@FILE", help="Your key/values, returned as given.")
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="A repeat within 24 h returns the first task and queues nothing.",
)
@click.option("--wait", is_flag=True, help="Show progress until the task ends; print its result.")
@json_option
@pass_session
def submit(
    session: Session,
    task_type: str,
    payload: str | None,
    priority: str | None,
    max_retries: int | None,
    timeout: int | None,
    scheduled_at: str | None,
    metadata: str | None,
    idempotency_key: str | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Submit a task of TYPE (a handler name); print its id."""
    body: dict[str, Any] = {"type": task_type}
    options = {
        "payload": load_json(payload, "--payload"),
        "max_retries": max_retries,
        "timeout": timeout,
        "scheduled_at": scheduled_at,
        "metadata": load_json(metadata, "--metadata"),
        "priority": int(priority) if priority and priority.isdigit() else priority,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    reply = session.client.request("POST", "/api/v1/tasks", json=body, headers=headers)
    created(Output(as_json), reply, wait, session.client)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "task_type", metavar="TYPE", help="Handler [file.process].")
@priority_option
@click.option("--wait", is_flag=True, help="Then show processing until it ends.")
@json_option
@pass_session
def upload(
    session: Session,
    file: Path,
    task_type: str | None,
    priority: str | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Upload FILE for processing (streamed); print the task id."""
    out = Output(as_json)
    form = {k: v for k, v in (("type", task_type), ("priority", priority)) if v}
    size = file.stat().st_size
    if not out.terminal or out.as_json:
        reply = session.client.upload(file, form, lambda sent: None)
    else:
        bar = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=24),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=out.console,
        )
        with bar:
            sending = bar.add_task(f"upload {file.name}", total=size)
            reply = session.client.upload(
                file, form, lambda sent: bar.update(sending, completed=sent)
            )
    created(out, reply, wait, session.client)


@click.command()
@click.argument("task_id", metavar="ID")
@json_option
@pass_session
def get(session: Session, task_id: str, as_json: bool) -> None:
    """Show a task's envelope."""
    reply = session.client.get(task_path(task_id))
    out = Output(as_json)
    if as_json:
        out.raw(reply.text)
        return
    envelope = reply.body
    names = [n for n in FIELD_ORDER if n in envelope]
    names += [n for n in envelope if n not in names and n not in SKIPPED_FIELDS]
    out.fields((name, envelope[name]) for name in names)


@click.command(name="ls")
@click.option("--state", help="Only tasks in this state (pending, running, completed, …).")
@click.option(
    "--status",
    help="Only tasks with this status (pending, processing, completed, failed, cancelled).",
)
@click.option("--type", "task_type", metavar="TYPE", help="Only tasks of this type.")
@click.option(
    "--priority",
    type=click.Choice(PRIORITIES),
    metavar="P",
    help="Only tasks of this priority: low|normal|high|critical or 0-3.",
)
@click.option(
    "--sort-by",
    type=click.Choice(SORT_KEYS),
    default="created_at",
    show_default=True,
    help="Order by created_at, updated_at or priority.",
)
@click.option("--order", type=click.Choice(("asc", "desc")), default="desc", show_default=True)
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--page-size", type=int, default=20, show_default=True)
@json_option
@pass_session
def list_tasks(
    session: Session,
    state: str | None,
    status: str | None,
    task_type: str | None,
    priority: str | None,
    sort_by: str,
    order: str,
    page: int,
    page_size: int,
    as_json: bool,
) -> None:
    """List tasks, newest first unless --sort-by/--order say otherwise.

    The filters combine: a task is listed when it matches every one given (a --state outside
    the given --status matches nothing)."""
    reply = session.client.get(
        "/api/v1/tasks",
        state=state,
        status=status,
        type=task_type,
        priority=priority,
        sort_by=sort_by,
        order=order,
        page=page,
        page_size=page_size,
    )
    out = Output(as_json)
    if as_json:
        out.raw(reply.text)
        return
    listing = reply.body
    out.table(
        ("id", "type", "state", "priority", "progress", "attempts", "age"),
        [
            (
                t["id"],
                t["type"],
                t["state"],
                t["priority"],
                f"{t.get('progress', 0)}%",
                t.get("attempts", 0),
                age(t.get("created_at")),
            )
            for t in listing["tasks"]
        ],
    )
    depths = ", ".join(f"{q} {n}" for q, n in listing.get("queue_depths", {}).items())
    out.note(
        f"page {listing['page']} of {max(listing['pages'], 1)}, {listing['total']} "
        f"tasks; waiting in queues: {depths}"
    )


def _one_task_call(method: str, suffix: str, done: str, **options: Any) -> Any:
    """A command that acts on one task and prints ``<done> <id>``."""

    @click.argument("task_id", metavar="ID")
    @json_option
    @pass_session
    def command(session: Session, task_id: str, as_json: bool) -> None:
        reply = session.client.request(method, task_path(task_id) + suffix, **options)
        out = Output(as_json)
        if as_json:
            out.raw(reply.text)
        else:
            state = reply.body.get("state")
            out.line(f"{done} {task_id}" + (f" (state {state})" if state else ""))

    return command


cancel = click.command(
    name="cancel",
    short_help="Cancel a task that has not started.",
    help="Cancel a task that has not started (pending, scheduled or retrying).",
)(_one_task_call("DELETE", "", "cancelled"))
retry = click.command(
    name="retry",
    short_help="Run a finished task again, under the same id.",
    help="Queue a failed, dead-lettered, cancelled or completed task again under the same id.",
)(_one_task_call("POST", "/retry", "queued again"))
purge = click.command(
    name="purge",
    short_help="Delete a finished task.",
    help="Delete a finished task: envelope, indexes, DLQ entry and uploaded file.",
)(_one_task_call("DELETE", "", "deleted", params={"purge": "true"}))


@click.command()
@json_option
@pass_session
def stats(session: Session, as_json: bool) -> None:
    """Show task counts by status and state, success rate, mean time."""
    reply = session.client.get("/api/v1/tasks/statistics")
    out = Output(as_json)
    if as_json:
        out.raw(reply.text)
        return
    body = reply.body
    pairs = [
        (k, body[k])
        for k in ("total", "pending", "processing", "completed", "failed", "cancelled")
        if k in body
    ]
    pairs += [(f"state {k}", v) for k, v in body.get("by_state", {}).items()]
    pairs.append(("success_rate", f"{100 * body.get('success_rate', 0):.1f}%"))
    pairs.append(("avg_processing_time_ms", f"{body.get('avg_processing_time_ms', 0):.1f}"))
    out.fields(pairs)


@click.command()
@click.argument("task_ids", metavar="[ID]...", nargs=-1)
@json_option
@pass_session
def watch(session: Session, task_ids: tuple[str, ...], as_json: bool) -> None:
    """Follow tasks live: progress bars until each ends.

    With no ID: every running task, new ones joining as they start, until Ctrl-C. With --json:
    the /ws event frames, one JSON document a line."""
    out = Output(as_json)
    on_frame = out.raw if as_json else None
    client = session.client
    if not task_ids:
        with display_for(out, keep=False) as display:
            watch_all(client, display, on_frame)
        return
    replies = {task_id: client.get(task_path(task_id)) for task_id in dict.fromkeys(task_ids)}
    with display_for(out) as display:
        finals = follow(client, replies, display, on_frame)
    failed = [t for t, r in finals.items() if r.body["state"] != "completed"]
    if failed:
        click.get_current_context().exit(EXIT_TASK_FAILED)


COMMANDS = (submit, upload, get, list_tasks, cancel, retry, purge, stats, watch)
