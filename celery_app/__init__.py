"""The Celery side of the service: everything the web and worker processes share.

``celery -A celery_app worker`` finds :data:`app` here. It reads its settings from the
environment when first used, so importing this package connects to nothing.
"""

from .factory import TaskqueueCelery, create_celery

app = create_celery()

__all__ = ["app", "create_celery", "TaskqueueCelery"]
