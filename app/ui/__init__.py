"""The console: ``/ui``, a live web page for operators, served by the web process itself.

Each view is a real URL rendered from a Jinja template (``app/templates/ui/``); the page then
reads the API with the visitor's credentials and follows ``/ws``. The pages themselves carry no
data, so they are public even with ``AUTH_ENABLED`` (a browser cannot send ``X-API-Key`` on a
navigation); every request the page makes afterwards is checked by the gate like any client's.

Each page is rendered with the id of the newest event (``event_id``): the page's snapshot is read
after it, and its stream resumes from it, so nothing that happens while the page loads is missed.
Assets come from ``app/static/`` (the vendored libraries' files and the console's own script and
style): nothing is fetched from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, render_template, send_from_directory

from celery_app.events import last_id

from ..api.document import document
from ..errors import REDIS_DOWN
from ..services import services

STATIC = Path(__file__).resolve().parent.parent / "static"

bp = Blueprint("ui", __name__, url_prefix="/ui")

HTML = ("text/html", "a console page")


def _page(template: str, view: str, **context: Any) -> str:
    settings = services().settings
    try:
        event_id = last_id(services().celery.runtime.redis)
    except REDIS_DOWN:
        event_id = None  # the page says so when its first request fails
    config = {"auth_enabled": settings.auth_enabled, "event_id": event_id, "view": view, **context}
    return render_template(template, page=config, view=view, **context)


def _console(summary: str) -> Any:
    return document(summary=summary, tags=("console",), public=True, responses={200: HTML})


@bp.get("")
@_console("Console: overview")
def overview() -> str:
    """Queues, workers, DLQ size, success rate and live throughput."""
    return _page("ui/overview.html", "overview")


@bp.get("/tasks")
@_console("Console: tasks")
def tasks() -> str:
    """The task listing (the query string holds its filters, sort and page)."""
    return _page("ui/tasks.html", "tasks")


@bp.get("/tasks/<task_id>")
@_console("Console: one task")
def task(task_id: str) -> str:
    """One task: envelope, live progress, timeline and actions."""
    return _page("ui/task.html", "task", task_id=task_id)


@bp.get("/workers")
@_console("Console: workers")
def workers() -> str:
    """Live workers with their state and heartbeat age."""
    return _page("ui/workers.html", "workers")


@bp.get("/dlq")
@_console("Console: dead-letter queue")
def dlq() -> str:
    """Dead-lettered tasks: retry one, retry all, clear."""
    return _page("ui/dlq.html", "dlq")


@bp.get("/submit")
@_console("Console: submit a task or upload a file")
def submit() -> str:
    """A task form built from ``/openapi.json`` and a file upload with progress."""
    return _page("ui/submit.html", "submit")


@bp.get("/audit")
@_console("Console: audit log")
def audit() -> str:
    """Who changed what (``GET /admin/audit``), oldest first from an hour ago or ``?after=``."""
    return _page("ui/audit.html", "audit")


@bp.get("/static/<path:filename>")
@document(
    summary="Console assets",
    tags=("console",),
    public=True,
    errors=(404,),
    responses={200: ("application/octet-stream", "a script, style sheet or licence")},
)
def asset(filename: str) -> Any:
    """A file shipped with the package (scripts, styles, the vendored libraries' licences)."""
    return send_from_directory(STATIC, filename, max_age=300)
