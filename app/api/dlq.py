"""The dead-letter queue API (``/admin/dlq``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from celery_app.errors import InvalidState, TaskNotFound

from ..services import dead_letters
from .audit import entry
from .document import document
from .responses import ClearedSchema, DeadLettersSchema, RequeuedSchema
from .schemas import parse_json_object, stream_page, stream_page_query

bp = Blueprint("dlq", __name__, url_prefix="/admin/dlq")


#: ``GET /admin/dlq`` query string.
PageQuery = stream_page_query("PageQuery", "a message_id")


class RetryOne(Schema):
    """Re-queue one dead-lettered task."""

    class Meta:
        unknown = RAISE

    task_id = fields.String(required=True, validate=validate.Length(min=1))


class RetryAll(Schema):
    """Re-queue every dead-lettered task."""

    class Meta:
        unknown = RAISE

    retry_all = fields.Boolean(required=True, truthy={True}, falsy={False},
                               validate=validate.Equal(True))


page_query = PageQuery()
RETRY_BODIES = (RetryOne(), RetryAll())


def load_retry_body(raw: dict[str, Any]) -> dict[str, Any]:
    """The body as one of the two accepted forms, or a 400 saying what they are."""
    for schema in RETRY_BODIES:
        try:
            return schema.load(raw)
        except ValidationError:
            continue
    raise ValidationError("give either task_id or retry_all: true")


@bp.get("")
@document(summary="Dead-letter queue entries", tags=("dead letters",), query=PageQuery,
          responses={200: DeadLettersSchema})
def entries():
    """DLQ entries oldest first; ``after`` (a message_id) and ``count`` page through them."""
    return stream_page(page_query, dead_letters(), request.args.to_dict())


@bp.post("/retry")
@document(summary="Queue dead-lettered tasks again", tags=("dead letters",),
          body=[RetryOne, RetryAll],
          responses={200: RequeuedSchema}, errors=(404,))
def retry():
    """Queue one dead-lettered task, or all of them, again."""
    body = load_retry_body(parse_json_object(request.get_data(cache=False)))
    if body.get("task_id"):
        dead_letters().retry(body["task_id"], entry("dlq.retry", body["task_id"], all=False))
        return {"message": "task re-queued", "task_id": body["task_id"]}
    retried = 0
    for task_id in dead_letters().task_ids():  # one transaction, and one entry, per task
        try:
            dead_letters().retry(task_id, entry("dlq.retry", task_id, all=True))
        except (TaskNotFound, InvalidState):  # retried or purged meanwhile
            continue
        retried += 1
    return {"message": "tasks re-queued", "retried_count": retried}


@bp.delete("")
@document(summary="Empty the dead-letter queue", tags=("dead letters",),
          responses={200: ClearedSchema})
def clear():
    """Empty the DLQ; the envelopes stay, in state ``dead_letter``."""
    cleared = dead_letters().clear(entry("dlq.clear", "dlq"))
    return {"message": "DLQ cleared", "cleared_count": cleared}
