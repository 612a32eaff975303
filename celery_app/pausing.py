"""Pause and resume, as the admin API asks for them: persist the flag, then wait for the workers
concerned to confirm (:mod:`celery_app.control`), at most ``PAUSE_CONFIRM_SECONDS``.

Each operation returns ``(body, confirmed)``; the web answers 200 when confirmed, else 202 with
the ``pausing``/``resuming`` state or the workers that have not confirmed yet. The flag is set
either way, and the claim guard already holds: an unconfirmed pause still starts nothing new.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import Celery

from . import model
from .audit import Audit
from .control import sync_workers
from .errors import TaskqueueError
from .listing import Listing
from .workers import Workers

#: A worker that has not replied gets the command again after this long.
RESEND_SECONDS = 0.5


class QueueNotFound(TaskqueueError):
    """Not one of the four queues."""

    status = 404

    def __init__(self) -> None:
        super().__init__("queue not found")


class Pausing:
    """Worker and queue pause over one Redis (its ``workers`` and ``listing`` nouns) and the
    Celery app whose control mailbox reaches the workers."""

    def __init__(
        self, workers: Workers, listing: Listing, celery: Celery, confirm_seconds: float
    ) -> None:
        self.workers = workers
        self.listing = listing
        self.celery = celery
        self.confirm_seconds = confirm_seconds

    def _confirm(self, hosts: list[str], done: Callable[[str, dict], bool]) -> set[str]:
        """The hosts whose reply satisfies ``done`` within ``confirm_seconds``.

        The command is sent again every :data:`RESEND_SECONDS` to the hosts that have not
        confirmed: the control mailbox is pub/sub, so a worker that was not listening yet (just
        started) or was reconnecting never sees a message. Applying twice changes nothing.
        """
        deadline = time.monotonic() + self.confirm_seconds
        pending = set(hosts)
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            replies = sync_workers(self.celery, sorted(pending), min(RESEND_SECONDS, remaining))
            pending -= {host for host, reply in replies.items() if done(host, reply)}
        return set(hosts) - pending

    def worker(
        self, hostname: str, paused: bool, audit: Audit | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Pause (or resume) one worker: its record, and whether it confirmed.

        Confirmed pause: the worker reads from no queue. Confirmed resume: it is no longer
        paused (it may still read from no queue, when all of its queues are paused).
        """
        self.workers.set_paused(hostname, paused, audit)

        def done(_: str, reply: dict) -> bool:
            if paused:
                return bool(reply["paused"] and not reply["queues"])
            return not reply["paused"]

        confirmed = bool(self._confirm([hostname], done))
        worker = self.workers.get(hostname)
        if confirmed and paused:
            worker["state"] = "paused"
        elif confirmed and worker["state"] in ("paused", "resuming"):
            worker["state"] = "idle"  # confirmed, but its record is not rewritten yet
        return worker, confirmed

    def queue(
        self, name: str, paused: bool, audit: Audit | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Pause (or resume) one queue on every worker that consumes it; ``pending_workers``
        lists those that did not confirm within the timeout."""
        if name not in model.QUEUES:
            raise QueueNotFound()
        self.workers.set_queue_paused(name, paused, audit)
        concerned = [w["id"] for w in self.workers.all() if name in w["queues"]]

        def done(_: str, reply: dict) -> bool:
            if paused:
                return name not in reply["queues"]
            return reply["paused"] or name in reply["queues"]

        confirmed = self._confirm(concerned, done)
        pending = [host for host in concerned if host not in confirmed]
        body: dict[str, Any] = {
            "name": name,
            "paused": paused,
            "depth": self.listing.queue_depths()[name],
        }
        if pending:
            body["pending_workers"] = pending
        return body, not pending
