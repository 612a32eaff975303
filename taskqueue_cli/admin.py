"""Operator commands: workers, queues, pause/resume, queue pause/resume, the DLQ (§5, §12).

They need the ``admin`` role when auth is on (a ``user`` gets the API's 403, exit 3).
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import click

from .render import Output, age
from .session import Session, json_option, pass_session


def _show(reply: Any, as_json: bool, line: str) -> None:
    out = Output(as_json)
    if as_json:
        out.raw(reply.text)
    else:
        out.line(line)


@click.command()
@json_option
@pass_session
def workers(session: Session, as_json: bool) -> None:
    """List live workers: state, active tasks, concurrency, queues.

    Read from the heartbeats the workers keep (a stopped worker leaves within three beats)."""
    reply = session.client.get("/admin/workers")
    out = Output(as_json)
    if as_json:
        out.raw(reply.text)
        return
    out.table(
        ("worker", "state", "active", "concurrency", "queues", "heartbeat", "up"),
        [
            (
                w["id"],
                w["state"],
                w.get("active_tasks"),
                w.get("concurrency"),
                ",".join(w.get("queues", [])),
                age(w.get("last_heartbeat")),
                age(w.get("started_at")),
            )
            for w in reply.body.get("workers", [])
        ],
    )


@click.command()
@json_option
@pass_session
def queues(session: Session, as_json: bool) -> None:
    """Show each priority queue: waiting messages, paused or not."""
    reply = session.client.get("/admin/queues")
    out = Output(as_json)
    if as_json:
        out.raw(reply.text)
        return
    table = reply.body.get("queues", {})
    pausable = any("paused" in q for q in table.values())  # services with queue pause
    headers = ("queue", "priority", "depth") + (("paused",) if pausable else ())
    rows = []
    for name, q in table.items():
        row = [name, q.get("priority"), q.get("depth")]
        rows.append(row + (["yes" if q.get("paused") else "no"] if pausable else []))
    out.table(headers, rows)
    out.note(f"{reply.body.get('total_depth', 0)} waiting in all")


HELP = {
    ("worker", "pause"): "Pause a worker: running tasks finish, no new one starts there.",
    ("worker", "resume"): "Resume a paused worker.",
    ("queue", "pause"): "Pause a queue on every worker: submits are accepted and wait.",
    ("queue", "resume"): "Resume a paused queue.",
}


def _switch(path: str, noun: str, verb: str) -> click.Command:
    """``pause``/``resume`` of a worker or a queue: POST, then say what the service confirmed
    (200) or what it still waits for (202: not every worker applied it yet)."""

    @click.command(name=verb, help=HELP[noun, verb])
    @click.argument("name", metavar=noun.upper())
    @json_option
    @pass_session
    def command(session: Session, name: str, as_json: bool) -> None:
        reply = session.client.request("POST", f"{path}/{quote(name, safe='')}/{verb}")
        body = reply.body
        if "state" in body:
            line = f"{noun} {name}: {body['state']}"
        else:
            line = f"{noun} {name}: {'paused' if body.get('paused') else 'running'}"
            if "depth" in body:
                line += f" ({body['depth']} waiting)"
        if reply.status == 202:
            waiting = ", ".join(body.get("pending_workers", []))
            line += " — not confirmed yet" + (f" by {waiting}" if waiting else "")
        _show(reply, as_json, line)

    return command


@click.group(name="queue")
def queue_group() -> None:
    """Pause or resume a priority queue."""


queue_group.add_command(_switch("/admin/queues", "queue", "pause"))
queue_group.add_command(_switch("/admin/queues", "queue", "resume"))


@click.group(name="dlq")
def dlq() -> None:
    """The dead-letter queue: list, retry, clear."""


@dlq.command(name="ls")
@click.option("--count", type=int, help="Entries per page [100].")
@click.option("--after", metavar="MESSAGE_ID", help="Page on after this entry.")
@json_option
@pass_session
def dlq_list(session: Session, count: int | None, after: str | None, as_json: bool) -> None:
    """List dead-lettered tasks, oldest first."""
    reply = session.client.get("/admin/dlq", count=count, after=after)
    out = Output(as_json)
    if as_json:
        out.raw(reply.text)
        return
    out.table(
        ("task id", "type", "reason", "error", "added", "message id"),
        [
            (
                e["task"]["id"],
                e["task"].get("type"),
                e.get("reason"),
                e["task"].get("error"),
                age(e.get("added_at")),
                e.get("message_id"),
            )
            for e in reply.body.get("entries", [])
        ],
    )
    out.note(f"{reply.body.get('size', 0)} in the DLQ")


@dlq.command(name="retry")
@click.argument("task_id", metavar="ID")
@json_option
@pass_session
def dlq_retry(session: Session, task_id: str, as_json: bool) -> None:
    """Queue one dead-lettered task again."""
    reply = session.client.request("POST", "/admin/dlq/retry", json={"task_id": task_id})
    _show(reply, as_json, f"queued again {task_id}")


@dlq.command(name="retry-all")
@json_option
@pass_session
def dlq_retry_all(session: Session, as_json: bool) -> None:
    """Queue every dead-lettered task again."""
    reply = session.client.request("POST", "/admin/dlq/retry", json={"retry_all": True})
    _show(reply, as_json, f"queued again {reply.body.get('retried_count', 0)} tasks")


@dlq.command(name="clear")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (asked only on a terminal).")
@json_option
@pass_session
def dlq_clear(session: Session, yes: bool, as_json: bool) -> None:
    """Empty the DLQ (the tasks stay, in state dead_letter)."""
    asked = not yes and sys.stdin.isatty() and sys.stdout.isatty()
    if asked and not click.confirm("Remove every entry from the dead-letter queue?"):
        Output().note("nothing cleared")
        click.get_current_context().exit(1)
    reply = session.client.request("DELETE", "/admin/dlq")
    _show(reply, as_json, f"cleared {reply.body.get('cleared_count', 0)} entries")


COMMANDS = (
    workers,
    queues,
    _switch("/admin/workers", "worker", "pause"),
    _switch("/admin/workers", "worker", "resume"),
    queue_group,
    dlq,
)
