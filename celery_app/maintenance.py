"""Cluster housekeeping that runs inside worker processes: no separate daemon to deploy.

One worker at a time (whoever holds ``tq:lock:maintenance``, a lock with an expiry) does, on the
worker's event-loop timer:

- **promote** every ``PROMOTE_INTERVAL_SECONDS``: delayed tasks (``scheduled``, retry backoff)
  whose time has come move into their Celery queue (one Lua call, atomic per task). Nothing
  delayed ever sits unacknowledged in Celery, so the visibility timeout cannot duplicate it.
- **sweep** every heartbeat interval: final-state tasks older than ``TASK_RETENTION_SECONDS``
  are purged — envelope, index entries, DLQ entry and uploaded files together, so listings and
  counts never show a dangling id.
- **reap** every heartbeat interval: a ``running`` task is lost when its lease has expired —
  the pool child executing it stopped renewing it (it died, with or without its worker). A
  lost task is a failed attempt, queued again at once under the same id, or dead-lettered when
  its retries are exhausted. The stale Celery message, if it ever comes back, is skipped at
  claim.
  Expiry only counts while the reaper itself could hear: after this worker lost Redis (an
  outage, a Sentinel failover — whether a tick failed or the consumer restarted its connection
  first) or its event loop stalled for more than a heartbeat interval, it reaps again only once
  it has reached Redis for three heartbeat intervals in a row — long enough for every execution
  that outlived the outage to renew its lease, so no task whose executor merely shared the
  outage is run a second time.
- **lost messages** every heartbeat interval: a ``pending`` task whose Celery message is in no
  queue and held by no worker is queued again (:mod:`celery_app.recovery`, bounded per sweep).
- **orphaned files** at the first sweep and then every tenth of ``UPLOAD_ORPHAN_SECONDS`` (at
  least every heartbeat interval): upload directories whose task is gone and partial uploads,
  untouched for ``UPLOAD_ORPHAN_SECONDS``, are deleted (:func:`celery_app.uploads.orphans`;
  one directory listing and pipelined ``EXISTS`` batches of 1,000 per run) — only when the
  directory's ``.owner`` file carries this deployment's ``tq:uploads:owner`` token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from celery import bootsteps
from redis.exceptions import LockError

from . import keys
from .errors import InvalidState, TaskNotFound
from .listing import Listing
from .metrics import fold_events
from .recovery import LostMessages
from .settings import Settings
from .store import Store
from .uploads import OWNER_FILE, orphans, owned, remove_orphans, remove_task_files
from .worker import HEARTBEAT_TTL_INTERVALS

logger = logging.getLogger(__name__)

PROMOTE_INTERVAL_SECONDS = 0.25
#: What needs no quarter-second precision runs at most this often: renewing the maintenance
#: lock (its TTL is five of these), folding events into the metrics (a scrape folds what is
#: left before it reads), and the queue.depth event (sent only when a depth changed).
HOUSEKEEPING_INTERVAL_SECONDS = 1.0
LOCK_TTL_SECONDS = 5.0


def lost_tasks(store: Store) -> list[tuple[str, str, str]]:
    """Running tasks whose execution is gone: ``(task_id, delivery, why)``.

    An execution is gone when its lease (:mod:`celery_app.lease`) has expired: the pool child
    that ran it stopped renewing it. The worker's own heartbeat does not decide: a main process
    that stalls while its child runs must not get the task run twice.
    """
    running = store.running_by_worker()
    tasks = [(worker, *task) for worker, held in running.items() for task in held]
    if not tasks:
        return []
    pipe = store.redis.pipeline(transaction=False)
    pipe.time()
    for _, task_id, _, _ in tasks:
        pipe.hget(keys.task(task_id), "lease_until")
        pipe.exists(keys.legacy_lease(task_id))
    (seconds, microseconds), *answers = pipe.execute()
    now_ms = seconds * 1000 + microseconds // 1000
    held = [
        int(until or 0) > now_ms or (until is None and legacy)
        for until, legacy in zip(answers[0::2], answers[1::2], strict=True)
    ]
    return [
        (task_id, delivery, f"execution lost on worker {worker} (lease expired)")
        for (worker, task_id, delivery, _), leased in zip(tasks, held, strict=True)
        if not leased
    ]


class Maintenance(bootsteps.StartStopStep):
    """Promoter and reaper, run by whichever worker holds the maintenance lock."""

    requires = {"celery_app.worker:Presence"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer = None
        self._lock = None
        self._holding = False
        self._last_reap = 0.0
        self._last_orphan_reap: float | None = None
        self._foreign_upload_dir = False
        self._last_depths: dict[str, int] | None = None
        self._last_housekeeping = 0.0
        self._lost_messages: LostMessages | None = None
        self._reachable_since: float | None = None
        self._last_tick: float | None = None

    def start(self, consumer: Any) -> None:
        # (Re)started — also after the consumer lost its broker connection, which it notices
        # before any tick fails: leases are judged only after three heartbeats heard anew.
        self._reachable_since = None
        self._last_tick = None
        redis = consumer.app.runtime.redis
        self._lock = redis.lock(keys.lock("maintenance"), timeout=LOCK_TTL_SECONDS,
                                blocking=False, thread_local=False)
        self._timer = consumer.timer.call_repeatedly(
            PROMOTE_INTERVAL_SECONDS, self.tick, (consumer,), priority=5)

    def stop(self, consumer: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._holding and self._lock is not None:
            with contextlib.suppress(LockError):
                self._lock.release()
            self._holding = False

    def _hold(self) -> bool:
        """Take or keep the lock; false when another worker holds it."""
        assert self._lock is not None
        try:
            if self._holding:
                self._lock.reacquire()
            else:
                self._holding = bool(self._lock.acquire(blocking=False))
        except LockError:
            self._holding = False
        return self._holding

    def _publish_depths(self, store: Store, listing: Listing) -> None:
        """Emit ``queue.depth`` when any queue's depth changed since the last one."""
        depths = listing.queue_depths()
        if depths != self._last_depths:
            self._last_depths = depths
            data = {"queues": depths, "total": sum(depths.values())}
            store.redis.xadd(keys.events(), {"type": "queue.depth", "data": json.dumps(data)},
                             maxlen=store.settings.events_maxlen, approximate=True)

    def _sweep(self, store: Store, settings: Settings) -> None:
        """Purge final tasks past their retention (a batch per tick)."""
        for task_id in store.expired(settings.task_retention_seconds):
            try:
                store.purge(task_id)
            except (TaskNotFound, InvalidState):  # retried or purged meanwhile
                continue
            remove_task_files(settings.upload_dir, task_id)

    def _reap_orphans(self, store: Store, settings: Settings, now: float) -> None:
        """Delete upload files no task will use (see the module's docstring for when)."""
        every = max(settings.worker_heartbeat_seconds, settings.upload_orphan_seconds / 10)
        if self._last_orphan_reap is not None and now - self._last_orphan_reap < every:
            return
        self._last_orphan_reap = now
        if not Path(settings.upload_dir).is_dir():  # nothing uploaded here (yet)
            return
        try:
            self._reap_orphans_in(store, settings)
        except Exception:  # reaping files must never hold up the rest of the tick
            logger.warning("could not reap orphaned uploads in %s", settings.upload_dir,
                           exc_info=True)

    def _reap_orphans_in(self, store: Store, settings: Settings) -> None:
        # SET NX, then GET (SET … NX GET needs Redis 7): whoever set it first, all read it.
        store.redis.set(keys.upload_owner(), secrets.token_hex(16), nx=True)
        token = store.redis.get(keys.upload_owner())
        if not isinstance(token, str):  # gone between the two (a flush): next run
            return
        if not owned(settings.upload_dir, token):
            if not self._foreign_upload_dir:
                self._foreign_upload_dir = True
                logger.warning(
                    "%s/%s does not hold this deployment's token (another deployment's "
                    "directory?): orphaned uploads are not reaped here (delete that file if "
                    "this directory is only this deployment's)", settings.upload_dir, OWNER_FILE)
            return
        self._foreign_upload_dir = False

        def missing(task_ids: list[str]) -> list[str]:
            pipe = store.redis.pipeline(transaction=False)
            for task_id in task_ids:
                pipe.exists(keys.task(task_id))
            return [t for t, there in zip(task_ids, pipe.execute(), strict=True) if not there]

        removed, failed = remove_orphans(
            orphans(settings.upload_dir, missing, settings.upload_orphan_seconds))
        for path in removed:
            logger.warning("removed orphaned upload %s", path)
        for path, why in failed:
            logger.warning("could not remove orphaned upload %s (%s)", path, why)

    def _recover_lost_messages(self, store: Store, settings: Settings) -> None:
        """Re-publish pending tasks whose message exists nowhere (a bounded step per call)."""
        if self._lost_messages is None:
            self._lost_messages = LostMessages(
                settings.lost_message_grace_seconds, settings.worker_heartbeat_seconds
            )
        self._lost_messages.sweep(store)

    def tick(self, consumer: Any) -> None:
        """Promote due tasks; reap lost ones once per heartbeat interval."""
        try:
            now = time.monotonic()
            heartbeat = consumer.app.settings.worker_heartbeat_seconds
            if self._last_tick is not None and now - self._last_tick > heartbeat:
                self._reachable_since = None  # ticks stopped (a stalled loop): heard nothing
            self._last_tick = now
            housekeeping = now - self._last_housekeeping >= HOUSEKEEPING_INTERVAL_SECONDS
            if housekeeping:
                self._last_housekeeping = now
                self._hold()
            if self._reachable_since is None:
                self._reachable_since = now
            if not self._holding:
                return
            store = consumer.app.runtime.store
            store.promote_due()
            if housekeeping:
                fold_events(store.scripts)  # metrics per batch, a second behind at most
                self._publish_depths(store, consumer.app.runtime.listing)
            heard_long_enough = now - self._reachable_since >= heartbeat * HEARTBEAT_TTL_INTERVALS
            if heard_long_enough and now - self._last_reap >= heartbeat:
                self._last_reap = now
                self._sweep(store, consumer.app.settings)
                self._reap_orphans(store, consumer.app.settings, now)
                for hostname in consumer.app.runtime.workers.forget_departed():
                    logger.warning("worker %s left (heartbeat expired)", hostname)
                for task_id, delivery, why in lost_tasks(store):
                    state = store.recover_lost(task_id, delivery, why)
                    logger.warning("recovered %s (%s): now %s", task_id, why, state)
                self._recover_lost_messages(store, consumer.app.settings)
                store.promote_due()
        except Exception:
            self._reachable_since = None
            logger.warning("maintenance tick failed", exc_info=True)
