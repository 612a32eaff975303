"""Pause and resume, as the admin API asks for them: persist the flag, then wait for the workers
concerned to confirm (:mod:`celery_app.control`), at most ``PAUSE_CONFIRM_SECONDS``.

Each operation returns ``(body, confirmed)``; the web answers 200 when confirmed, else 202 with
the ``pausing``/``resuming`` state or the workers that have not confirmed yet. The flag is set
either way, and the claim guard already holds: an unconfirmed pause still starts nothing new.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from . import model
from .control import sync_workers
from .errors import TaskqueueError
from .listing import Listing
from .workers import Workers


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

    def worker(self, hostname: str, paused: bool) -> tuple[dict[str, Any], bool]:
        """Pause (or resume) one worker: its record, and whether it confirmed.

        Confirmed pause: the worker reads from no queue. Confirmed resume: it is no longer
        paused (it may still read from no queue, when all of its queues are paused).
        """
        self.workers.set_paused(hostname, paused)
        reply = sync_workers(self.celery, [hostname], self.confirm_seconds).get(hostname)
        if paused:
            confirmed = bool(reply and reply["paused"] and not reply["queues"])
        else:
            confirmed = bool(reply and not reply["paused"])
        worker = self.workers.get(hostname)
        if confirmed and paused:
            worker["state"] = "paused"
        elif confirmed and worker["state"] in ("paused", "resuming"):
            worker["state"] = "idle"  # confirmed, but its record is not rewritten yet
        return worker, confirmed

    def queue(self, name: str, paused: bool) -> tuple[dict[str, Any], bool]:
        """Pause (or resume) one queue on every worker that consumes it; ``pending_workers``
        lists those that did not confirm within the timeout."""
        if name not in model.QUEUES:
            raise QueueNotFound()
        self.workers.set_queue_paused(name, paused)
        concerned = [w["id"] for w in self.workers.all() if name in w["queues"]]
        replies = sync_workers(self.celery, concerned, self.confirm_seconds)
        pending = [
            host
            for host in concerned
            if host not in replies
            or (
                name in replies[host]["queues"]
                if paused
                else not replies[host]["paused"] and name not in replies[host]["queues"]
            )
        ]
        body: dict[str, Any] = {
            "name": name,
            "paused": paused,
            "depth": self.listing.queue_depths()[name],
        }
        if pending:
            body["pending_workers"] = pending
        return body, not pending
