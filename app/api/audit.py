"""The audit log API (``GET /admin/audit``), and :func:`entry` for the views that mutate.

Every view that changes something passes ``entry(action, target, **detail)`` down to the
``celery_app`` call that makes the change, which writes it in the same transaction
(:mod:`celery_app.audit`). Admin only (the ``/admin`` prefix).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from celery_app.audit import Audit
from celery_app.events import EVENT_ID_PATTERN, is_event_id

from ..auth import actor
from ..services import audit_log, services
from .document import document
from .responses import AuditLogSchema

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


def entry(action: str, target: str, **detail: Any) -> Audit:
    """The audit entry of a change the current request makes (its actor, ``AUDIT_MAXLEN``)."""
    return Audit(actor(), action, target, detail, services().settings.audit_maxlen)


def _entry_id(value: str) -> None:
    if not is_event_id(value):
        raise ValidationError("must be an entry id such as 1763800000000-0")


class AuditQuery(Schema):
    """``GET /admin/audit`` query string: pages like the DLQ."""

    class Meta:
        unknown = RAISE

    count = fields.Integer(validate=validate.Range(1, 1000), load_default=100)
    after = fields.String(
        validate=_entry_id,
        load_default=None,
        metadata={
            "pattern": EVENT_ID_PATTERN,
            "description": "the id of the last entry seen",
        },
    )


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
    query = audit_query.load(request.args.to_dict())
    page, size = audit_log().page(query["count"], query["after"])
    return {"entries": page, "size": size}
