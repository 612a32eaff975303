"""The admin API (``/admin``): health, workers, pause/resume, queues."""

from __future__ import annotations

import redis
from flask import Blueprint

from celery_app import model

from ..errors import redis_condition
from ..services import listing, runtime, workers
from .document import document
from .responses import HealthSchema, QueuesSchema, WorkerListSchema, WorkerSchema

bp = Blueprint("admin", __name__, url_prefix="/admin")


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


@bp.post("/workers/<worker_id>/pause")
@document(summary="Pause a worker", tags=("operations",), responses={200: WorkerSchema},
          errors=(404,))
def pause(worker_id: str):
    """Stop the worker taking tasks; running ones finish. Persists across its restarts."""
    return workers().pause(worker_id)


@bp.post("/workers/<worker_id>/resume")
@document(summary="Resume a worker", tags=("operations",), responses={200: WorkerSchema},
          errors=(404,))
def resume(worker_id: str):
    """Let the worker take tasks again, critical first."""
    return workers().resume(worker_id)


@bp.get("/queues")
@document(summary="Queue depths", tags=("operations",), responses={200: QueuesSchema})
def queues():
    """Messages waiting in each Celery queue, with the queue's priority number."""
    depths = listing().queue_depths()
    return {
        "queues": {q: {"depth": depths[q], "priority": model.PRIORITIES[q]} for q in model.QUEUES},
        "total_depth": sum(depths.values()),
    }
