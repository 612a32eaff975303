"""Limits per task type (``/admin/limits``): a cluster-wide start rate and concurrency cap,
set and removed at run time, enforced at claim (:mod:`celery_app.limits`). Admin only."""

from __future__ import annotations

from flask import Blueprint, abort, request
from marshmallow import RAISE, Schema, fields, validate

import handlers
from celery_app.limits import MAX_CONCURRENCY, RATE_PATTERN
from celery_app.payloads import StrictInteger

from ..services import limits
from .audit import entry
from .document import document
from .schemas import parse_json_object

bp = Blueprint("limits", __name__, url_prefix="/admin/limits")


class LimitSchema(Schema):
    """``PUT /admin/limits/{type}``: replaces both values; an absent or ``null`` one is no limit,
    so ``{}`` removes the type's limits like ``DELETE``."""

    class Meta:
        unknown = RAISE

    rate = fields.String(
        allow_none=True,
        validate=validate.Regexp(RATE_PATTERN, error="must be N/s, N/m or N/h (1-1000000)"),
        metadata={"pattern": RATE_PATTERN,
                  "description": "at most N starts in any sliding second, minute or hour"},
    )
    concurrency = StrictInteger(
        allow_none=True, validate=validate.Range(1, MAX_CONCURRENCY),
        metadata={"description": "at most this many executions at once, cluster-wide"},
    )


class LimitValueSchema(Schema):
    """One type's limits."""

    rate = fields.String(required=True, allow_none=True)
    concurrency = fields.Integer(required=True, allow_none=True)


class LimitsSchema(Schema):
    """Every limited type."""

    limits = fields.Dict(keys=fields.String(), values=fields.Nested(LimitValueSchema),
                         required=True)


class LimitSetSchema(LimitValueSchema):
    """A type's limits as set."""

    type = fields.String(required=True)


class LimitDeletedSchema(Schema):
    """A type's limits removed."""

    message = fields.String(required=True)
    type = fields.String(required=True)


limit_schema = LimitSchema()


def _registered(task_type: str) -> str:
    if task_type not in handlers.REGISTRY:
        abort(404, f"unknown task type {task_type!r}")
    return task_type


@bp.get("")
@document(summary="Limits per task type", tags=("operations",), responses={200: LimitsSchema})
def all_limits():
    """Every task type that has a limit."""
    return {"limits": limits().all()}


@bp.put("/<task_type>")
@document(summary="Set the limits of a task type", tags=("operations",), body=LimitSchema,
          responses={200: LimitSetSchema}, errors=(404,),
          description="Cluster-wide, enforced when a task starts. A task over its limit stays "
                      "`pending` with `throttled_until`, uses no attempt, and starts when "
                      "allowed; other types keep running.")
def set_limit(task_type: str):
    """Replace the limits of one registered task type."""
    body = limit_schema.load(parse_json_object(request.get_data(cache=False)))
    rate, concurrency = body.get("rate"), body.get("concurrency")
    audit = entry("limits.set", _registered(task_type), rate=rate, concurrency=concurrency)
    return limits().set(task_type, rate, concurrency, audit)


@bp.delete("/<task_type>")
@document(summary="Remove the limits of a task type", tags=("operations",),
          responses={200: LimitDeletedSchema}, errors=(404,))
def delete_limit(task_type: str):
    """Its tasks start freely again."""
    limits().delete(_registered(task_type), entry("limits.delete", task_type))
    return {"message": "limits removed", "type": task_type}
