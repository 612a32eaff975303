"""``POST /api/v1/tasks/upload``: a file becomes a task (``file.process`` by default)."""

from __future__ import annotations

import os
import shutil
from typing import Any

from flask import Blueprint, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from werkzeug.exceptions import RequestTimeout

import handlers
from celery_app import defaults, strictjson
from celery_app.errors import InvalidRequest
from celery_app.store import NewTask
from celery_app.uploads import disk_name, display_name, new_upload_id, task_dir
from handlers.files import sniff

from ..services import services, store
from .document import document, task_links
from .responses import EnvelopeSchema
from .schemas import Priority, callback_url_field, payload_validator, task_type

bp = Blueprint("uploads", __name__, url_prefix="/api/v1/tasks")


def takes_a_file() -> list[str]:
    """Handlers whose parameters accept an uploaded ``file``."""
    found = []
    for name in handlers.load():
        try:
            payload_validator(name).load({"file": "x"})
        except ValidationError:
            continue
        found.append(name)
    return found


class UploadFormSchema(Schema):
    """The multipart form fields besides ``file`` (all text)."""

    class Meta:
        unknown = RAISE

    type = task_type(takes_a_file(), load_default="file.process")
    priority = Priority(load_default="low")
    max_retries = fields.Integer(validate=validate.Range(0, defaults.MAX_RETRIES),
                                 load_default=defaults.DEFAULT_MAX_RETRIES)
    timeout = fields.Integer(validate=validate.Range(1, defaults.MAX_TIMEOUT_SECONDS),
                             load_default=defaults.DEFAULT_TIMEOUT_SECONDS)
    metadata = fields.String(load_default="{}")
    callback_url = callback_url_field()

    @validates_schema
    def metadata_is_an_object(self, data: dict[str, Any], **kwargs: Any) -> None:
        try:
            value = strictjson.loads(data.get("metadata", "{}"))
        except strictjson.InvalidJSON as exc:
            raise ValidationError(f"not strict JSON: {exc}", "metadata") from None
        if not isinstance(value, dict):
            raise ValidationError("must be a JSON object", "metadata")


class UploadBodySchema(UploadFormSchema):
    """The whole multipart body, for the documentation: the form fields and the file."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    metadata = fields.Dict(metadata={"description": "a JSON object (sent as JSON text)"})


upload_schema = UploadFormSchema()


@bp.post("/upload")
@document(summary="Upload a file; it becomes a task", tags=("tasks",),
          multipart=UploadBodySchema, responses={201: EnvelopeSchema},
          links={201: task_links("task_id")}, errors=(408,),
          description="The file streams to `UPLOAD_DIR/<task_id>/` (SHA-256 computed on the "
                      "way); over `MAX_UPLOAD_BYTES` → 413 and nothing is kept; a body that "
                      "stalls longer than `UPLOAD_ORPHAN_SECONDS` → 408.")
def upload():
    """Stream the file to ``UPLOAD_DIR/<task_id>/``, then create its task."""
    settings = services().settings
    request.max_content_length = settings.max_upload_bytes
    form = upload_schema.load(request.form.to_dict())
    received = request.files.get("file")
    if received is None:
        raise InvalidRequest("file: a file is required (multipart field 'file')")
    if not received.filename:
        raise InvalidRequest("file: the file has no name")
    task_id = new_upload_id()
    name = disk_name(received.filename)
    payload = {"file": f"{task_id}/{name}"}  # fits form["type"]: only such types validate

    stream = received.stream
    folder = task_dir(settings.upload_dir, task_id)
    folder.mkdir(parents=True)
    stream.close()
    try:
        os.replace(stream.path, folder / name)
    except FileNotFoundError:
        # Reaped as an orphan: the body stalled for UPLOAD_ORPHAN_SECONDS between two chunks.
        shutil.rmtree(folder, ignore_errors=True)
        raise RequestTimeout("the upload stalled too long and its partial file was removed; "
                             "send it again") from None
    new = NewTask(
        type=form["type"], payload=payload, priority=form["priority"],
        max_retries=form["max_retries"], timeout=form["timeout"],
        metadata=strictjson.loads(form["metadata"]), task_id=task_id,
        callback_url=form.get("callback_url"),
        extra={"file_name": display_name(received.filename), "file_size": stream.size,
               "content_type": sniff(stream.head),
               "sha256": stream.sha256},
    )
    try:
        envelope, _ = store().submit(new)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return envelope, 201
