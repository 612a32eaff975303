"""Response schemas: every successful body is dumped through one of these (``app/openapi.py``
does it for each view), and ``/openapi.json`` is generated from the same classes."""

from __future__ import annotations

from marshmallow import Schema, fields

from celery_app import model

from ..errors import REDIS_CONDITIONS

TIMESTAMP = {"format": "date-time", "description": "ISO-8601 UTC with milliseconds and Z"}


def _enum(values: tuple[str, ...], **kwargs: object) -> fields.String:
    return fields.String(metadata={"enum": list(values)}, **kwargs)


class ErrorSchema(Schema):
    """The error body of every route."""

    error = fields.String(required=True, metadata={"description": "HTTP reason phrase"})
    message = fields.String(required=True, metadata={"description": "what was wrong"})


class CallbackSchema(Schema):
    """The completion webhook's delivery state."""

    state = _enum(("pending", "delivered", "retrying", "failed"), required=True)
    attempts = fields.Integer(required=True, metadata={"description": "requests made"})
    last_status = fields.Integer(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)


class EnvelopeSchema(Schema):
    """A task; fields with no value are omitted."""

    id = fields.String(required=True)
    task_id = fields.String(required=True, metadata={"description": "same value as id"})
    type = fields.String(required=True)
    payload = fields.Dict(required=True)
    priority = _enum(tuple(model.PRIORITIES), required=True)
    state = _enum(model.STATES, required=True)
    status = _enum(model.STATUSES, required=True)
    progress = fields.Integer(required=True, metadata={"minimum": 0, "maximum": 100})
    progress_message = fields.String()
    attempts = fields.Integer(required=True)
    max_retries = fields.Integer(required=True)
    timeout = fields.Integer(required=True)
    metadata = fields.Dict(required=True)
    result = fields.Raw(metadata={"description": "the handler's return value (any JSON)"})
    error = fields.String()
    error_message = fields.String(metadata={"description": "same value as error"})
    worker_id = fields.String()
    created_at = fields.String(required=True, metadata=TIMESTAMP)
    updated_at = fields.String(required=True, metadata=TIMESTAMP)
    scheduled_at = fields.String(metadata=TIMESTAMP)
    started_at = fields.String(metadata=TIMESTAMP)
    completed_at = fields.String(metadata=TIMESTAMP)
    next_retry_at = fields.String(metadata=TIMESTAMP)
    throttled_until = fields.String(metadata={
        **TIMESTAMP, "description": "pending, held back by a limit of its type until then"})
    file_name = fields.String()
    file_size = fields.Integer()
    content_type = fields.String()
    sha256 = fields.String()
    callback_url = fields.String()
    callback = fields.Nested(CallbackSchema)


class QueueDepthsSchema(Schema):
    critical = fields.Integer(required=True)
    high = fields.Integer(required=True)
    normal = fields.Integer(required=True)
    low = fields.Integer(required=True)


class BatchCreatedSchema(Schema):
    """The tasks of a batch, in the request's order."""

    tasks = fields.List(fields.Nested(EnvelopeSchema), required=True)
    count = fields.Integer(required=True)


class TaskPageSchema(Schema):
    """Queue depths plus one page of tasks."""

    queue_depths = fields.Nested(QueueDepthsSchema, required=True)
    total_pending = fields.Integer(required=True)
    tasks = fields.List(fields.Nested(EnvelopeSchema), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    pages = fields.Integer(required=True)


class ByStateSchema(Schema):
    pending = fields.Integer(required=True)
    scheduled = fields.Integer(required=True)
    running = fields.Integer(required=True)
    retrying = fields.Integer(required=True)
    completed = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    dead_letter = fields.Integer(required=True)
    cancelled = fields.Integer(required=True)


class StatisticsSchema(Schema):
    total = fields.Integer(required=True)
    pending = fields.Integer(required=True)
    processing = fields.Integer(required=True)
    completed = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    cancelled = fields.Integer(required=True)
    by_state = fields.Nested(ByStateSchema, required=True)
    success_rate = fields.Float(required=True)
    avg_processing_time_ms = fields.Float(required=True)


class DeletedSchema(Schema):
    """A purged task."""

    message = fields.String(required=True)
    task_id = fields.String(required=True)


class HealthSchema(Schema):
    status = _enum(("healthy", "unhealthy"), required=True)
    redis = _enum(("connected", *REDIS_CONDITIONS), required=True)
    workers = fields.Integer()
    error = fields.String()


class WorkerSchema(Schema):
    id = fields.String(required=True, metadata={"description": "Celery worker hostname"})
    #: ``pausing``/``resuming``: told, not confirmed yet.
    state = _enum(("idle", "busy", "paused", "pausing", "resuming"), required=True)
    started_at = fields.String(required=True, metadata=TIMESTAMP)
    last_heartbeat = fields.String(required=True, metadata=TIMESTAMP)
    active_tasks = fields.Integer(required=True)
    concurrency = fields.Integer(required=True)
    queues = fields.List(fields.String(), required=True)


class WorkerListSchema(Schema):
    workers = fields.List(fields.Nested(WorkerSchema), required=True)
    count = fields.Integer(required=True)


class QueueInfoSchema(Schema):
    depth = fields.Integer(required=True)
    priority = fields.Integer(required=True)
    paused = fields.Boolean(required=True)


class QueuePauseSchema(Schema):
    """A queue after pause/resume; ``pending_workers`` (202 only) have not confirmed yet."""

    name = _enum(model.QUEUES, required=True)
    paused = fields.Boolean(required=True)
    depth = fields.Integer(required=True)
    pending_workers = fields.List(fields.String())


class QueueTableSchema(Schema):
    critical = fields.Nested(QueueInfoSchema, required=True)
    high = fields.Nested(QueueInfoSchema, required=True)
    normal = fields.Nested(QueueInfoSchema, required=True)
    low = fields.Nested(QueueInfoSchema, required=True)


class QueuesSchema(Schema):
    queues = fields.Nested(QueueTableSchema, required=True)
    total_depth = fields.Integer(required=True)


class DeadLetterSchema(Schema):
    task = fields.Nested(EnvelopeSchema, required=True)
    reason = fields.String(required=True)
    added_at = fields.String(required=True, metadata=TIMESTAMP)
    message_id = fields.String(required=True, metadata={"description": "stream entry id"})


def stream_page_schema(name: str, entry: type[Schema]) -> type[Schema]:
    """The body (schema class ``name``) of a page of a Redis stream: ``entries``, a list of
    ``entry`` oldest first, and ``size``, how many entries the whole stream holds."""
    return type(name, (Schema,), {
        "__module__": __name__,
        "entries": fields.List(fields.Nested(entry), required=True),
        "size": fields.Integer(required=True),
    })


DeadLettersSchema = stream_page_schema("DeadLettersSchema", DeadLetterSchema)


class RequeuedSchema(Schema):
    message = fields.String(required=True)
    task_id = fields.String(metadata={"description": "when one task was re-queued"})
    retried_count = fields.Integer(metadata={"description": "with retry_all"})


class AuditEntrySchema(Schema):
    id = fields.String(required=True, metadata={"description": "stream entry id"})
    at = fields.String(required=True, metadata=TIMESTAMP)
    actor = fields.String(required=True, metadata={
        "description": "JWT sub, key:<8 hex of the API key's SHA-256>, or anonymous"})
    action = fields.String(required=True, metadata={"description": "e.g. task.cancel"})
    target = fields.String(required=True, metadata={"description": "task id, worker, queue…"})
    detail = fields.Dict(required=True)


AuditLogSchema = stream_page_schema("AuditLogSchema", AuditEntrySchema)


class ClearedSchema(Schema):
    message = fields.String(required=True)
    cleared_count = fields.Integer(required=True)
