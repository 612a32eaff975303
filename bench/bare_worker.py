"""The baselines for ``bench/e2e.py``: a bare Celery worker app with a no-op ``echo`` task.

``BARE_VARIANT`` chooses the configuration (read when ``celery -A bench.bare_worker`` imports
this module):

- ``same`` (default): exactly the service's Celery configuration
  (:func:`celery_app.config.celery_config`: ``acks_late``, prefetch disabled, the four queues
  read in priority order), with Celery's own Redis result backend — what the service's worker
  costs on top of Celery itself.
- ``defaults``: Celery's defaults (early ack, prefetch multiplier 4, queues read round-robin)
  with the same broker, result backend and four queues.

``echo`` returns its keyword arguments, as the service's ``echo`` handler does; results are
stored (Celery's default), since the service keeps every task's result too.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from celery_app.config import celery_config
from celery_app.model import QUEUES
from celery_app.settings import Settings


def create_celery(variant: str, settings: Settings) -> Celery:
    """A plain Celery app of ``variant`` (``same`` or ``defaults``) with task ``echo``."""
    celery = Celery("bare")
    if variant == "same":
        celery.config_from_object(celery_config(settings))
        celery.conf.result_backend = settings.redis_url  # Celery's own result backend
    elif variant == "defaults":
        exchange = Exchange("", type="direct")
        celery.conf.update(
            broker_url=settings.redis_url,
            result_backend=settings.redis_url,
            task_queues=[Queue(q, exchange, routing_key=q) for q in QUEUES],
            task_default_queue="low",
        )
    else:
        raise ValueError(f"BARE_VARIANT must be same or defaults, not {variant!r}")

    @celery.task(name="echo")
    def echo(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    return celery


app = create_celery(os.environ.get("BARE_VARIANT", "same"), Settings.from_env())
