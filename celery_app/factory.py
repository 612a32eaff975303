"""The Celery app: one factory for the worker CLI, the web process and direct Python users."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from celery import Celery

import handlers

from . import model
from .config import celery_config
from .defaults import DEFAULT_TIMEOUT_SECONDS, hard_time_limit_seconds
from .messages import DELIVERY_HEADER, new_delivery
from .payloads import check_payload
from .runtime import Runtime
from .settings import Settings
from .store import NewTask
from .task import HandlerTask


class TaskqueueCelery(Celery):
    """A Celery app that knows the service's settings and runtime (Redis, store)."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__("taskqueue")
        self._settings = settings
        self.on_configure.connect(self._configure, weak=False)
        for name, fn in handlers.load().items():
            # shared=False: the handlers belong to this app, not to every Celery app the
            # process creates
            self.task(name=name, base=HandlerTask, typing=False, shared=False)(fn)
        from . import worker

        worker.install(self)

    def _configure(self, sender: Celery, **_: object) -> None:
        self.config_from_object(celery_config(self.settings))

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Publish a task; a handler task published directly (``delay``, ``apply_async``,
        ``send_task``) first gets its envelope and ``task.submitted`` event, like an HTTP submit.

        Done here rather than in a ``before_task_publish`` receiver so that a failure reaches
        the caller instead of being swallowed. The keyword arguments are checked against the
        handler's signature first (:func:`~celery_app.payloads.check_payload`): a payload the
        HTTP API would refuse raises :class:`~celery_app.payloads.InvalidPayload` here and
        nothing is stored or queued.
        """
        headers = dict(options.get("headers") or {})
        if name in handlers.REGISTRY and DELIVERY_HEADER not in headers:
            if args:
                raise TypeError(f"{name}: handler tasks take keyword arguments (the payload)")
            check_payload(name, kwargs or {}, prefix=name)
            new = direct_task(self, name, kwargs or {}, options)
            headers[DELIVERY_HEADER] = new_delivery()
            options.update(headers=headers, task_id=new.task_id,
                           soft_time_limit=options.get("soft_time_limit") or new.timeout,
                           time_limit=options.get("time_limit") or hard_time_limit_seconds(
                               new.timeout, self.settings.hard_timeout_grace_seconds))
            self.runtime.store.submit(new, adopt_delivery=headers[DELIVERY_HEADER])
        return super().send_task(name, args, kwargs, **options)

    @cached_property
    def settings(self) -> Settings:
        """Settings given to the factory, else read from the environment on first use."""
        return self._settings or Settings.from_env()

    @cached_property
    def runtime(self) -> Runtime:
        """Per-process Redis client and envelope store."""
        return Runtime(self, self.settings)


def direct_task(celery: Celery, name: str, kwargs: dict, options: dict) -> NewTask:
    """The task a direct Celery publish describes; its priority is the queue it goes to."""
    queue = options.get("queue") or celery.conf.task_default_queue
    queue = getattr(queue, "name", queue)
    return NewTask(
        type=name,
        payload=dict(kwargs),
        priority=queue if queue in model.PRIORITIES else model.DEFAULT_PRIORITY,
        timeout=int(options.get("soft_time_limit") or DEFAULT_TIMEOUT_SECONDS),
        task_id=options.get("task_id") or model.new_task_id(),
    )


def create_celery(settings: Settings | None = None) -> TaskqueueCelery:
    """A configured Celery app; with no ``settings`` they come from the environment."""
    return TaskqueueCelery(settings)
