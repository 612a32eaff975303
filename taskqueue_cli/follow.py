"""Following tasks over ``/ws`` (contract §6): never by polling, and without gaps.

**No gap between reading and listening.** A task is read (``GET``) and then followed from the
event stream *replayed from before that read*: the socket asks for ``last_event_id`` =
(the server's ``Date`` at the read − :data:`REPLAY_MARGIN_MS`). Event ids are Redis stream ids
(milliseconds of Redis's clock), so every event that the read did not reflect is replayed, even
one appended between the WebSocket handshake and the server's subscription. The margin covers
the ``Date`` header's one-second resolution and clock differences between web processes and
Redis; the replay costs the events of those few seconds.

**Never backwards.** The replay starts seconds before the read, so it holds events the read
already reflects; each is passed on (``--json`` prints every frame) but not applied to the
task's view: :meth:`~.bars.TaskView.reflects` compares its id with the envelope's
``updated_at``, which the same Lua call stamps from the same Redis clock. Events after the read
are applied as they come.

**Final means final.** A final-state event after the read may be overtaken before it arrives
(the task retried at once; an older ``task.dead_letter`` is already skipped as reflected), so a
final-state event is confirmed by reading the envelope, which the same Lua call wrote before
appending the event: only a final envelope ends the wait, and it is what ``--wait`` prints.

**Resume.** A dropped connection is reopened with ``last_event_id`` = the last event received
(or the replay point), so nothing is missed and nothing repeated; it gives up after
:data:`RECONNECT_GIVE_UP_SECONDS` without a connection (exit 4).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from urllib.parse import quote

from .bars import FINAL_STATES, TaskView
from .client import ApiError, Client, Reply, Unreachable

REPLAY_MARGIN_MS = 5000
RECONNECT_GIVE_UP_SECONDS = 60.0
RECONNECT_DELAYS_SECONDS = (0.2, 0.5, 1.0, 2.0, 4.0)
#: Seconds one ``recv`` waits before looping (keeps Ctrl-C prompt while the stream is quiet).
RECV_SLICE_SECONDS = 0.5
#: ``watch`` with no ids lists at most this many running tasks to begin with.
MAX_LISTED = 1000


class Display(Protocol):
    def show(self, view: TaskView) -> None: ...
    def done(self, view: TaskView) -> None: ...
    def notice(self, text: str) -> None: ...


def task_path(task_id: str) -> str:
    return f"/api/v1/tasks/{quote(task_id, safe='')}"


def replay_point(reply: Reply) -> str:
    """The ``last_event_id`` to replay from for a read answered by ``reply``."""
    ms = reply.date_ms if reply.date_ms is not None else int(time.time() * 1000)
    return f"{max(0, ms - REPLAY_MARGIN_MS)}-0"


class EventStream:
    """``/ws`` events (filtered by ``params``) after ``after`` — or, with ``None``, after the
    first connection's handshake (the server replays from there) — across reconnections."""

    def __init__(
        self, client: Client, params: dict[str, str], after: str | None,
        notice: Callable[[str], None],
    ) -> None:
        self.client, self.params, self.last_id, self.notice = client, params, after, notice
        self.socket: Any = None

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def open(self, retry: bool = True) -> None:
        """Connect now (:meth:`events` connects when first asked otherwise); without
        ``retry``, one attempt (an unreachable service is exit 4 at once)."""
        if self.socket is None:
            self.socket = self._connect(retry)

    def events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(frame text, event)`` pairs, oldest first, forever."""
        while True:
            self.open()
            try:
                while True:
                    try:
                        text = self.socket.recv(timeout=RECV_SLICE_SECONDS)
                    except TimeoutError:
                        continue
                    event = json.loads(text)
                    if event.get("type") == "error":
                        raise ApiError(400, "Bad Request", event.get("message", "refused"))
                    self.last_id = event.get("id", self.last_id)
                    yield text, event
            except OSError:  # Dropped, or the network
                self.notice(f"connection to /ws lost; resuming after event {self.last_id}")
            finally:
                self.socket.close()
                self.socket = None

    def _connect(self, retry: bool = True) -> Any:
        """A connection replaying after :attr:`last_id`; retried until the give-up time."""
        params = dict(self.params)
        if self.last_id is not None:
            params["last_event_id"] = self.last_id
        deadline = time.monotonic() + (RECONNECT_GIVE_UP_SECONDS if retry else 0)
        for attempt in itertools.count():
            try:
                return self.client.websocket("/ws", params)
            except Unreachable:
                if time.monotonic() > deadline:
                    raise
            except ApiError as exc:  # a proxy's 502/503 while the web process restarts
                if exc.status < 500 or time.monotonic() > deadline:
                    raise
            delay = RECONNECT_DELAYS_SECONDS[min(attempt, len(RECONNECT_DELAYS_SECONDS) - 1)]
            time.sleep(delay)  # backoff between reconnection attempts
        raise AssertionError("not reached")


def follow(
    client: Client,
    replies: dict[str, Reply],
    display: Display,
    on_frame: Callable[[str], None] | None = None,
) -> dict[str, Reply]:
    """Follow tasks (their ``GET`` replies) until each is final; return each final ``GET``."""
    views = {task_id: TaskView.of(reply.body) for task_id, reply in replies.items()}
    finals = {t: r for t, r in replies.items() if r.body.get("state") in FINAL_STATES}
    for task_id, view in views.items():
        (display.done if task_id in finals else display.show)(view)
    waiting = set(replies) - set(finals)
    if not waiting:
        return finals
    after = min((replay_point(r) for r in replies.values()), key=_id_key)
    params = {"task_id": next(iter(waiting))} if len(waiting) == 1 else {"types": "task.*"}
    with EventStream(client, params, after, display.notice) as stream:
        for text, event in stream.events():
            task_id = (event.get("data") or {}).get("task_id")
            if task_id not in waiting:
                continue
            if on_frame is not None:
                on_frame(text)
            view = views[task_id]
            if view.reflects(event):
                continue  # replayed from before the read (a final one too: the read was not)
            if event["data"].get("state") not in FINAL_STATES:
                if view.apply_event(event):
                    display.show(view)
                continue
            reply = client.get(task_path(task_id))  # confirm: the envelope is the truth
            view.apply_envelope(reply.body)
            if reply.body.get("state") not in FINAL_STATES:
                display.show(view)
                continue
            display.done(view)
            finals[task_id] = reply
            waiting.discard(task_id)
            if not waiting:
                break
    return finals


def watch_all(
    client: Client, display: Display, on_frame: Callable[[str], None] | None = None
) -> None:
    """Every running task, and each new one as it starts, until interrupted.

    The socket opens first, without ``last_event_id``, so it carries every event after its
    handshake; the running tasks are listed after that. A task running at the listing is in
    it (its events that the listing reflects are passed over); one that starts later arrives
    as news; one that ended before the socket opened is never shown. (Replaying from before
    the listing instead would bring back the tasks that ended in those seconds.)
    """
    with EventStream(client, {"types": "task.*"}, None, display.notice) as stream:
        stream.open(retry=False)
        first = client.get("/api/v1/tasks", state="running", page_size=100)
        listed = list(first.body.get("tasks", []))
        for page in range(2, min(int(first.body.get("pages", 1)), MAX_LISTED // 100) + 1):
            listed += client.get(
                "/api/v1/tasks", state="running", page_size=100, page=page
            ).body.get("tasks", [])
        views = {envelope["id"]: TaskView.of(envelope) for envelope in listed}
        for view in views.values():
            display.show(view)
        if stream.last_id is None:  # a reconnection before any event: nothing missed
            stream.last_id = replay_point(first)
        for text, event in stream.events():
            if on_frame is not None:
                on_frame(text)
            data = event.get("data") or {}
            task_id = data.get("task_id")
            if task_id not in views:
                if event.get("type") not in {"task.started", "task.progress"}:
                    continue  # followed from the moment it starts
                views[task_id] = TaskView(task_id)
            view = views[task_id]
            if not view.apply_event(event):
                continue  # a listed task's event from before the listing
            if view.state in FINAL_STATES:
                display.done(view)
                del views[task_id]
            else:
                display.show(view)


def _id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)
