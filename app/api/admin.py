"""The admin API (``/admin``): health, workers, worker and queue pause/resume, queues."""

from __future__ import annotations

import redis
from flask import Blueprint

from celery_app import model
from celery_app.pausing import Pausing

from ..errors import redis_condition
from ..services import listing, runtime, services, workers
from .audit import entry
from .document import document
from .responses import (
    HealthSchema,
    QueuePauseSchema,
    QueuesSchema,
    WorkerListSchema,
    WorkerSchema,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")


def pausing() -> Pausing:
    """Worker and queue pause for this app's Redis and Celery app."""
    found = services()
    return Pausing(workers(), listing(), found.celery, found.settings.pause_confirm_seconds)


@bp.get("/health")
@document(summary="Health", tags=("operations",), public=True,
          responses={200: HealthSchema, 503: HealthSchema})
def health():
    """200 when Redis answers and accepts writes; 503 (within 2 s) when it does not, with
    ``redis`` naming why: ``disconnected``, ``out of memory``, ``read-only replica``, …"""
    try:
        runtime().ping()
        runtime().probe_writes()
        count = workers().count()
    except redis.RedisError as exc:
        condition = redis_condition(exc)
        if condition is None:
            raise
        return {"status": "unhealthy", "redis": condition, "error": str(exc)}, 503
    return {"status": "healthy", "redis": "connected", "workers": count}


@bp.get("/workers")
@document(summary="Live workers", tags=("operations",), responses={200: WorkerListSchema})
def worker_list():
    """Every live worker, from the heartbeat records the workers write (no broadcast)."""
    found = workers().all()
    return {"workers": found, "count": len(found)}


_CONFIRM = ("200 once the worker confirmed (from then on no new execution starts there); "
            "202 with state `{}` when it did not confirm within PAUSE_CONFIRM_SECONDS. "
            "Persisted: the worker keeps it across restarts.")


@bp.post("/workers/<worker_id>/pause")
@document(summary="Pause a worker", tags=("operations",),
          responses={200: WorkerSchema, 202: WorkerSchema}, errors=(404,),
          description=_CONFIRM.format("pausing"))
def pause(worker_id: str):
    """Stop the worker taking tasks; running ones finish."""
    worker, confirmed = pausing().worker(worker_id, True, entry("worker.pause", worker_id))
    return worker, 200 if confirmed else 202


@bp.post("/workers/<worker_id>/resume")
@document(summary="Resume a worker", tags=("operations",),
          responses={200: WorkerSchema, 202: WorkerSchema}, errors=(404,),
          description=_CONFIRM.format("resuming"))
def resume(worker_id: str):
    """Let the worker take tasks again, critical first."""
    worker, confirmed = pausing().worker(worker_id, False, entry("worker.resume", worker_id))
    return worker, 200 if confirmed else 202


@bp.get("/queues")
@document(summary="Queue depths", tags=("operations",), responses={200: QueuesSchema})
def queues():
    """Messages waiting in each Celery queue, with the queue's priority and pause flag."""
    depths = listing().queue_depths()
    paused = workers().paused_queues()
    return {
        "queues": {q: {"depth": depths[q], "priority": model.PRIORITIES[q], "paused": q in paused}
                   for q in model.QUEUES},
        "total_depth": sum(depths.values()),
    }


_QUEUE_CONFIRM = ("200 once every live worker consuming the queue applied it; 202 with "
                  "`pending_workers` otherwise (after PAUSE_CONFIRM_SECONDS). Persisted: "
                  "workers started later honour it. Submits to a paused queue are accepted "
                  "and wait.")


@bp.post("/queues/<name>/pause")
@document(summary="Pause a queue", tags=("operations",),
          responses={200: QueuePauseSchema, 202: QueuePauseSchema}, errors=(404,),
          description=_QUEUE_CONFIRM)
def pause_queue(name: str):
    """No task of this queue starts on any worker; other queues keep flowing."""
    body, confirmed = pausing().queue(name, True, entry("queue.pause", name))
    return body, 200 if confirmed else 202


@bp.post("/queues/<name>/resume")
@document(summary="Resume a queue", tags=("operations",),
          responses={200: QueuePauseSchema, 202: QueuePauseSchema}, errors=(404,),
          description=_QUEUE_CONFIRM)
def resume_queue(name: str):
    """The queue's tasks start again, in strict priority order with the other queues."""
    body, confirmed = pausing().queue(name, False, entry("queue.resume", name))
    return body, 200 if confirmed else 202
