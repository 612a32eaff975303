"""The event hub: one Redis reader per web process, fanning events out to subscriptions.

Long polls (``GET /api/v1/tasks/<id>?wait=S``) park on the same reader: a waiter is a
:class:`threading.Event` keyed by task id, set when an event says that task is in a final state —
no Redis connection and no polling per waiter, only the thread gunicorn gives the request.

For ``/ws`` the hub encodes each event's frame once and writes it to every interested socket
itself (through each connection's outbox, never blocking): waking one thread per connection
per event is what costs at hundreds of clients. The tracker's subscriptions queue events for
their connection's thread instead.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from celery_app import model, strictjson
from celery_app.events import Event, id_key, last_id, read_new

from .outbox import Outbox, text_frame

logger = logging.getLogger(__name__)

#: Events a connection may have buffered (replay seam, tracker queue) before it is dropped.
QUEUE_SIZE = 1000
READ_BLOCK_MS = 1000
#: Pause between reads while Redis is unreachable or after an unexpected error.
RETRY_SECONDS = 0.5


class Subscription:
    """A connection's interest in events.

    ``direct`` subscriptions (``/ws``) are written by the hub once :meth:`go_live` has run;
    until then, and always for queued ones (the tracker), events wait in :attr:`queue`.
    """

    def __init__(self, wants: Callable[[Event], bool], outbox: Outbox | None = None,
                 after: str | None = None) -> None:
        self.wants = wants
        self.outbox = outbox
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_SIZE)
        self.overflowed = False
        self._live = False
        #: Nothing at or before this id is ever sent or queued: what the connection already
        #: has (``last_event_id``) or what came before its handshake. The hub's reader may be
        #: behind it, still dispatching older events, when the connection subscribes.
        self._sent = id_key(after) if after else (0, 0)

    def offer(self, event: Event, frame: Callable[[], bytes]) -> None:
        if self.overflowed or not self.wants(event) or id_key(event.id) <= self._sent:
            return
        if self.outbox is None:
            self._enqueue(event)
            return
        with self.outbox.lock:  # the same lock go_live holds: no event slips between
            if not self._live:
                self._enqueue(event)
            elif id_key(event.id) > self._sent:  # checked again: go_live may have moved it
                self.outbox.write_locked(frame())

    def _enqueue(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.overflowed = True
            if self.outbox is not None:
                self.outbox.wake.set()

    def go_live(self, sent: tuple[int, int], frame_of: Callable[[Event], bytes]) -> None:
        """After replay: send what queued up meanwhile (newer than ``sent`` and than the
        subscription's ``after``), then let the hub write directly — under the outbox lock, so
        no event can slip between the two."""
        assert self.outbox is not None
        with self.outbox.lock:
            sent = max(sent, self._sent)
            while True:
                try:
                    event = self.queue.get_nowait()
                except queue.Empty:
                    break
                if id_key(event.id) > sent:
                    self.outbox.write_locked(frame_of(event))
                    sent = id_key(event.id)
            self._sent = sent
            self._live = True


class Hub:
    """Reads the event stream once per process and fans it out to subscriptions."""

    def __init__(self, client_factory: Callable[[], redis.Redis]) -> None:
        self._client_factory = client_factory
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._pid: int | None = None

    def _start_reader(self) -> None:
        """Start this process's reader thread (lazily, after a fork); call with the lock held.

        Its starting position is read here, so every event appended after this call is seen.
        """
        if self._pid != os.getpid():
            client = self._client_factory()
            start = last_id(client)
            threading.Thread(target=self._run, args=(client, start), name="event-hub",
                             daemon=True).start()
            self._pid = os.getpid()

    def subscribe(self, wants: Callable[[Event], bool], outbox: Outbox | None = None,
                  after: str | None = None) -> Subscription:
        """Receive every event that ``wants`` accepts and that the stream gets from now on.

        The reader's starting position is fixed here, before the caller replays history, so
        history and live events always meet: no gap (duplicates are skipped by id). Events at
        or before ``after`` (a stream id) are never offered to the subscription.
        """
        subscription = Subscription(wants, outbox, after)
        with self._lock:
            self._start_reader()
            self._subscriptions.add(subscription)
        return subscription

    @contextmanager
    def final_waiter(self, task_id: str) -> Iterator[threading.Event]:
        """An event set once the stream reports ``task_id`` in a final state.

        Register first, then read the envelope: a transition after the read appends its event
        after the reader's position, so it cannot be missed (no lost wake-up).
        """
        woken = threading.Event()
        with self._lock:
            self._start_reader()
            self._waiters.setdefault(task_id, set()).add(woken)
        try:
            yield woken
        finally:
            with self._lock:
                waiting = self._waiters.get(task_id)
                if waiting is not None:
                    waiting.discard(woken)
                    if not waiting:
                        del self._waiters[task_id]

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def _run(self, client: redis.Redis, position: str) -> None:
        """The reader thread: every event after ``position``, in order, to the subscriptions.
        It ends only with the process: Redis going away is waited out (the position is kept,
        nothing is skipped on reconnect), and an unexpected error is logged and the reading
        goes on after the event it happened on (a thread that died would silently stop every
        socket and long poll of this process)."""
        lost = False  # an outage is logged when it starts and when it ends, not per retry
        while True:
            try:
                events, read_up_to = read_new(client, position, count=500,
                                              block_ms=READ_BLOCK_MS)
                if lost:
                    lost = False
                    logger.warning("event hub reached Redis again; reading on after %s",
                                   position)
                for event in events:
                    position = event.id
                    self._dispatch(event)
                position = read_up_to
            except redis.RedisError as exc:
                if not lost:
                    lost = True
                    logger.warning("event hub lost Redis (%s: %s); retrying every %.1f s",
                                   type(exc).__name__, exc, RETRY_SECONDS)
                time.sleep(RETRY_SECONDS)
            except Exception:
                logger.exception("event hub: unexpected error after event %s; going on",
                                 position)
                time.sleep(RETRY_SECONDS)

    def _dispatch(self, event: Event) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
            if self._waiters and event.data.get("state") in model.FINAL_STATES:
                for woken in self._waiters.pop(event.data.get("task_id"), ()):
                    woken.set()
        encoded: list[bytes] = []

        def frame() -> bytes:  # encoded once per event, shared by every connection
            if not encoded:
                encoded.append(frame_bytes(event))
            return encoded[0]

        for subscription in subscriptions:
            subscription.offer(event, frame)


def frame_bytes(event: Event) -> bytes:
    return text_frame(strictjson.dumps(event.frame(), separators=(",", ":")).encode())
