"""The baseline for ``bench/submit.py``: a bare Flask endpoint that only publishes with Celery.

``POST /api/v1/tasks`` takes the same JSON body as the service, and queues the same Celery
message the service would (task ``echo``, queue ``normal``, soft/hard time limits 300/310 s)
with a plain ``send_task`` — no validation, no envelope, no Lua. ``GET /admin/health`` exists
so ``tests.harness.WebServer`` can wait for gunicorn to come up.

Run under gunicorn as ``bench.bare_app:create_app()`` (reads ``REDIS_URL`` like the service).
"""

from __future__ import annotations

import uuid

from celery import Celery
from flask import Flask, request

from celery_app.config import celery_config
from celery_app.settings import Settings

#: The limits the service puts on an ``echo`` task with the default ``timeout`` of 300 s.
SOFT_TIME_LIMIT = 300
TIME_LIMIT = 310


def create_app(settings: Settings | None = None, ignore_result: bool = False) -> Flask:
    """The baseline app; with no ``settings`` they are read from the environment.

    ``ignore_result=True`` skips the result backend's per-publish subscription: the cheapest
    possible ``send_task`` (one ``LPUSH``).
    """
    settings = settings or Settings.from_env()
    # A plain Celery app with the service's configuration: not the service's own app class,
    # whose send_task also creates an envelope for direct publishes.
    celery = Celery("bare")
    celery.config_from_object(celery_config(settings))
    celery.conf.result_backend = settings.redis_url  # Celery's own result backend
    app = Flask(__name__)

    @app.post("/api/v1/tasks")
    def submit() -> tuple[dict[str, str], int]:
        body = request.get_json()
        task_id = str(uuid.uuid4())
        celery.send_task(
            "echo",
            kwargs=body.get("payload") or {},
            task_id=task_id,
            queue="normal",
            soft_time_limit=SOFT_TIME_LIMIT,
            time_limit=TIME_LIMIT,
            ignore_result=ignore_result,
        )
        return {"id": task_id}, 201

    @app.get("/admin/health")
    def health() -> dict[str, str]:
        return {"status": "healthy"}

    return app
