"""The audit log API (``GET /admin/audit``), and :func:`entry` for the views that mutate.

Every view that changes something passes ``entry(action, target, **detail)`` down to the
``celery_app`` call that makes the change, which writes it in the same transaction
(:mod:`celery_app.audit`). Admin only (the ``/admin`` prefix).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from celery_app.audit import Audit

from ..auth import actor
from ..services import audit_log, services
from .document import document
from .responses import AuditLogSchema
from .schemas import stream_page, stream_page_query

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


def entry(action: str, target: str, **detail: Any) -> Audit:
    """The audit entry of a change the current request makes (its actor, ``AUDIT_MAXLEN``)."""
    return Audit(actor(), action, target, detail, services().settings.audit_maxlen)


#: ``GET /admin/audit`` query string: pages like the DLQ.
AuditQuery = stream_page_query("AuditQuery", "an entry id",
                               after_description="the id of the last entry seen")
audit_query = AuditQuery()


@bp.get("")
@document(
    summary="Audit log",
    tags=("operations",),
    query=AuditQuery,
    responses={200: AuditLogSchema},
    description="Every mutation through `/admin` and every cancel, purge, retry and "
    "PATCH through the task API, oldest first (newest last); `after` (an "
    "entry `id`) and `count` page through it.",
)
def entries():
    """Audit entries oldest first; ``after`` (an entry id) and ``count`` page through them."""
    return stream_page(audit_query, audit_log(), request.args.to_dict())
