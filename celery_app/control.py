"""What a worker consumes: worker pause and queue pause, one mechanism, applied and confirmed.

A worker consumes its ``-Q`` queues minus the paused queues, or nothing while the worker itself
is paused (both flags are fields of ``tq:gates``, :mod:`celery_app.keys`). Both flags are
persisted in Redis, so a
worker that restarts, or starts later, honours them before it consumes its first message.

**Applying.** The web process sets the flag, then sends Celery's remote-control command
:func:`taskqueue_sync` (``reply=True``, ``destination=`` the workers concerned, so it answers as
soon as they have replied). The worker's main process reads the flags and changes its consumers
inside the command — on its event loop, between two reads — and replies with what the kombu
channel now reads from (``channel.active_queues``). The web answers 200 only when every reply
shows the change. A worker also re-applies the flags at every heartbeat, for a command it missed
(the control mailbox is pub/sub: a worker reconnecting to Redis loses what was sent meanwhile).

**Changing the consumer set** cancels every task consumer and adds the wanted queues back in
strict priority order (kombu appends a re-added queue at the end of its BRPOP order, so a
re-added ``critical`` would otherwise come last), then settles the BRPOP in flight
(:meth:`Consumption.settle_brpop`): kombu's ``basic_cancel`` only forgets a queue, and the
BRPOP sent before still names every old queue in the old order.

**A guard at claim time** makes the answer true whatever kombu does: the claim script refuses
to start a task on a paused worker or of a paused queue (``claim.lua``), and the pool child
puts the message back on its queue (``Reject(requeue=True)``), still ``pending``. That covers a
message that was already delivered to the worker when the consumers changed.
"""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any

import redis
from celery import Celery
from celery.worker.control import control_command

from . import keys, model
from .workers import queues_in

logger = logging.getLogger(__name__)

#: The remote-control command name (a worker of another version ignores it: no reply).
SYNC_COMMAND = "taskqueue_sync"


def read_flags(client: redis.Redis, hostname: str) -> tuple[bool, set[str]]:
    """``(worker paused, paused queue names)`` as persisted, in one round trip."""
    fields = client.hkeys(keys.gates())
    return keys.worker_gate(hostname) in fields, queues_in(fields)


class Consumption:
    """One worker's consumer set: the queues it may read (``own``, its ``-Q`` in priority
    order) and what it applied last (``paused``)."""

    def __init__(self) -> None:
        self.own: list[str] = []
        self.paused = False

    def remember_queues(self, consumer: Any) -> None:
        """Note the ``-Q`` queues once (later restarts of the consumer see a reduced set)."""
        if not self.own:
            names = {q.name for q in consumer.task_consumer.queues}
            self.own = [q for q in model.QUEUES if q in names]

    @staticmethod
    def active(consumer: Any) -> list[str]:
        """The queues kombu's channel reads from now, in BRPOP order."""
        task_consumer = consumer.task_consumer
        if task_consumer is None:
            return []
        return list(task_consumer.channel.active_queues)

    def apply(self, consumer: Any, client: redis.Redis) -> tuple[bool, bool]:
        """Bring the consumers in line with the flags: ``(paused changed, queues changed)``."""
        paused, paused_queues = read_flags(client, consumer.hostname)
        wanted = [] if paused else [q for q in self.own if q not in paused_queues]
        registered = [q.name for q in consumer.task_consumer.queues]
        active = self.active(consumer)
        queues_changed = registered != wanted or (bool(active) and active != wanted)
        if queues_changed:
            for queue in self.own:
                consumer.cancel_task_queue(queue)
            for queue in wanted:  # critical first: kombu appends each re-added queue
                consumer.add_task_queue(queue, routing_key=queue)
            self.settle_brpop(consumer)
            logger.info("consuming from %s", ", ".join(wanted) or "no queue")
        paused_changed = paused != self.paused
        self.paused = paused
        return paused_changed, queues_changed

    @staticmethod
    def settle_brpop(consumer: Any) -> None:
        """Take the answer of the BRPOP in flight now, so that the next one names the new
        queues in the new order.

        kombu's ``basic_cancel`` only forgets the queue: a BRPOP sent before still waits (up
        to ``brpop_timeout``, 1 s) on every old queue, in the old order, and may pop one more
        message. Its answer is read here, as kombu's own ``Channel.close`` does: a message of a
        queue no longer consumed goes back to its queue ("no consumers"); one of a queue still
        consumed is delivered as usual. Blocks the event loop at most ``brpop_timeout``.
        """
        channel = consumer.task_consumer.channel
        if not getattr(channel, "_in_poll", None):
            return
        try:
            channel._brpop_read()
        except channel.connection_errors + (Empty,):
            pass  # nothing popped, or the connection dropped (kombu reconnects)

    def reply(self, consumer: Any) -> dict[str, Any]:
        """What :func:`taskqueue_sync` answers: ``{"paused": bool, "queues": [names]}``."""
        return {"paused": self.paused, "queues": self.active(consumer)}


@control_command()
def taskqueue_sync(state: Any, **_: Any) -> dict[str, Any]:
    """Apply this worker's persisted pause flags now; reply with what it consumes afterwards."""
    presence = getattr(state.consumer, "taskqueue_presence", None)
    if presence is None or state.consumer.task_consumer is None:
        return {"error": "worker not ready"}
    return {"ok": presence.sync(state.consumer)}


def sync_workers(celery: Celery, hostnames: list[str], timeout: float) -> dict[str, dict]:
    """Send :func:`taskqueue_sync` to ``hostnames`` and wait up to ``timeout`` seconds for all
    replies: hostname → ``{"paused", "queues"}`` for each worker that answered."""
    if not hostnames:
        return {}
    replies = celery.control.broadcast(
        SYNC_COMMAND,
        destination=list(hostnames),
        reply=True,
        timeout=timeout,
        limit=len(hostnames),
    )
    answers: dict[str, dict] = {}
    for reply in replies or []:
        for hostname, answer in reply.items():
            if isinstance(answer, dict) and isinstance(answer.get("ok"), dict):
                answers[hostname] = answer["ok"]
    return answers
