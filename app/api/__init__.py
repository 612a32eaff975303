"""The HTTP API: one blueprint per resource.

================  =====================  ==================================================
blueprint         prefix                 module
================  =====================  ==================================================
``tasks``         ``/api/v1/tasks``      :mod:`app.api.tasks` (submit, read, list, cancel…)
``uploads``       ``/api/v1/tasks``      :mod:`app.api.uploads` (``POST /upload``)
``admin``         ``/admin``             :mod:`app.api.admin` (health, workers, queues)
``dlq``           ``/admin/dlq``         :mod:`app.api.dlq` (the dead-letter queue)
``whoami``        ``/api/v1``            :mod:`app.api.whoami` (``GET /whoami``: the role)
``audit``         ``/admin/audit``       :mod:`app.api.audit` (the audit log)
``limits``        ``/admin/limits``      :mod:`app.api.limits` (limits per task type)
================  =====================  ==================================================

Views declare their operation with :func:`app.api.document.document`; request schemas are in
:mod:`app.api.schemas`, response schemas in :mod:`app.api.responses`.
"""

from __future__ import annotations

from flask import Flask

from . import admin, audit, dlq, limits, tasks, uploads, whoami


def init_app(app: Flask) -> None:
    """Register every resource's blueprint on ``app``."""
    for module in (tasks, uploads, admin, dlq, whoami, audit, limits):
        app.register_blueprint(module.bp)
