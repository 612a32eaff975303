"""Request schemas of the task API: every rule about input lives here."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Protocol

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

import handlers
from celery_app import defaults, model, strictjson
from celery_app.batch import MAX_BATCH
from celery_app.errors import InvalidRequest
from celery_app.events import EVENT_ID_PATTERN, is_event_id
from celery_app.payloads import (  # noqa: F401  (re-exported for the views and the document)
    StrictBoolean,
    StrictInteger,
    StrictNumber,
    payload_schema,
    payload_validator,
)

MAX_JSON_DEPTH = strictjson.MAX_DEPTH


PRIORITY_SPEC = {"oneOf": [
    {"type": "integer", "minimum": 0, "maximum": 3},
    {"type": "string", "enum": [*model.PRIORITIES, "0", "1", "2", "3"]},
], "description": "0=low, 1=normal, 2=high, 3=critical, or the name"}


class Priority(fields.Field):
    """``0``–``3`` or ``low``/``normal``/``high``/``critical`` (digits also as text, for forms);
    loads as the name."""

    default_error_messages = {"invalid": "must be 0-3 or one of low, normal, high, critical"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata=PRIORITY_SPEC, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON Schema's integer: 0.0 is 0
        if isinstance(value, int) and not isinstance(value, bool):
            if value in model.PRIORITY_NAMES:
                return model.PRIORITY_NAMES[value]
        elif isinstance(value, str):
            if value in model.PRIORITIES:
                return value
            if value in {"0", "1", "2", "3"}:
                return model.PRIORITY_NAMES[int(value)]
        raise self.make_error("invalid")


class UtcDateTime(fields.AwareDateTime):
    """An ISO-8601 date-time (UTC when no offset is given), loaded as UTC; one whose UTC
    moment falls outside years 1-9999 (``9999-12-31T23:59:59-12:00``) is out of range."""

    default_error_messages = {"range": "date-time out of range (UTC years 1-9999)"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError):
            raise self.make_error("range") from None


def registered_type(value: str) -> None:
    if value not in handlers.REGISTRY:
        raise ValidationError(f"unknown task type {value!r}")


def task_type(names: list[str] | None = None, **kwargs: Any) -> fields.String:
    """A registered handler's name (an enum in the OpenAPI document)."""
    allowed = sorted(handlers.load()) if names is None else sorted(names)

    def check(value: str) -> None:
        registered_type(value)
        if value not in allowed:
            raise ValidationError(f"{value} cannot be used here (one of {', '.join(allowed)})")

    return fields.String(validate=check, metadata={"enum": allowed}, **kwargs)


#: Longest accepted ``callback_url``.
MAX_CALLBACK_URL_LENGTH = 2048
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_URL_CHARS = r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]"  # RFC 3986 unreserved, sub-delims, ":@/%"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_V4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
#: An IPv6 address (RFC 4291 text forms, an IPv4 tail included), as Python's ipaddress reads it.
_V6 = (
    rf"(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,7}}:|(?:{_H}:){{1,6}}:{_H}"
    rf"|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}"
    rf"|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
    rf"|{_H}:(?::{_H}){{1,6}}|:(?:(?::{_H}){{1,7}}|:)"
    rf"|(?:{_H}:){{6}}{_V4}|::(?:[Ff]{{4}}(?::0{{1,4}})?:)?{_V4}|(?:{_H}:){{1,4}}:{_V4})"
)
#: The ``callback_url`` grammar, the same for the document (``pattern``) and the check: http(s),
#: a host name (RFC 1123 labels) or IP literal (IPv6 in brackets), a port 1-65535, then a path,
#: query and fragment of RFC 3986 characters. No user info, no whitespace or control characters.
CALLBACK_URL_PATTERN = (
    rf"^https?://(?:{_LABEL}(?:\.{_LABEL})*\.?|\[{_V6}\])(?::{_PORT})?"
    rf"(?:/{_URL_CHARS}*)?(?:\?(?:{_URL_CHARS}|\?)*)?(?:#(?:{_URL_CHARS}|\?)*)?$"
)
_CALLBACK_URL = re.compile(CALLBACK_URL_PATTERN)


def _absolute_http_url(value: str) -> None:
    """An absolute ``http``/``https`` URL matching :data:`CALLBACK_URL_PATTERN` (what the
    document states is exactly what is accepted)."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError("must not contain whitespace or control characters")
    if not value.lower().startswith(("http://", "https://")):
        raise ValidationError("must be an absolute http:// or https:// URL")
    if not _CALLBACK_URL.match(value):
        raise ValidationError(
            "not a valid URL: a host name or IP literal, a port 1-65535, then path, query and "
            "fragment of URL characters (RFC 3986) are expected"
        )


def callback_url_field() -> fields.String:
    """``callback_url``: an absolute http(s) URL of at most 2048 characters. Whether its host
    may be reached is decided at delivery time, after DNS (``celery_app/webhook_http.py``)."""
    return fields.String(
        allow_none=False,  # absent means no webhook; null is not a URL
        validate=[validate.Length(max=MAX_CALLBACK_URL_LENGTH), _absolute_http_url],
        metadata={"pattern": CALLBACK_URL_PATTERN, "maxLength": MAX_CALLBACK_URL_LENGTH,
                  "description": "POSTed {event, task} when the task reaches a final state"})


class SubmitSchema(Schema):
    """``POST /api/v1/tasks``."""

    class Meta:
        unknown = RAISE

    type = task_type(required=True)
    payload = fields.Dict(keys=fields.String(), load_default=dict)
    priority = Priority(load_default=model.DEFAULT_PRIORITY)
    max_retries = StrictInteger(validate=validate.Range(0, defaults.MAX_RETRIES),
                                load_default=defaults.DEFAULT_MAX_RETRIES)
    timeout = StrictInteger(validate=validate.Range(1, defaults.MAX_TIMEOUT_SECONDS),
                            load_default=defaults.DEFAULT_TIMEOUT_SECONDS)
    metadata = fields.Dict(keys=fields.String(), load_default=dict)
    scheduled_at = UtcDateTime(load_default=None)
    callback_url = callback_url_field()

    @validates_schema
    def payload_fits_handler(self, data: dict[str, Any], **kwargs: Any) -> None:
        """The payload must fit the handler's parameters (names and JSON types)."""
        if data.get("type") in handlers.REGISTRY:
            try:
                payload_validator(data["type"]).load(data.get("payload") or {})
            except ValidationError as exc:
                raise ValidationError(exc.messages, "payload") from exc


class BatchSchema(Schema):
    """``POST /api/v1/tasks/batch``: 1–1000 create bodies, checked as one (all or nothing)."""

    class Meta:
        unknown = RAISE

    tasks = fields.List(fields.Nested(SubmitSchema), required=True,
                        validate=validate.Length(1, MAX_BATCH),
                        metadata={"description": f"1-{MAX_BATCH} bodies of POST /api/v1/tasks"})


#: Longest long poll (seconds): ``GET /api/v1/tasks/{id}?wait=S`` with ``0 < S <= 60``.
MAX_WAIT_SECONDS = 60


class GetQuerySchema(Schema):
    """``GET /api/v1/tasks/{id}`` query string."""

    class Meta:
        unknown = RAISE

    wait = fields.Float(
        validate=validate.Range(0, MAX_WAIT_SECONDS, min_inclusive=False),
        metadata={"description": "long poll: answer once the task is final, or after this "
                                 "many seconds (0 < wait <= 60) with its current envelope"})


class DeleteQuerySchema(Schema):
    """``DELETE /api/v1/tasks/{id}`` query string."""

    class Meta:
        unknown = RAISE

    purge = fields.Boolean(load_default=False)


class PatchSchema(Schema):
    """``PATCH /api/v1/tasks/{id}``: an external processor's report."""

    OPENAPI_EXTRA = {"minProperties": 1}

    class Meta:
        unknown = RAISE

    status = fields.String(validate=validate.OneOf(("processing", "completed", "failed")))
    progress = StrictInteger(validate=validate.Range(0, 100))
    error_message = fields.String(validate=validate.Length(min=1, max=10_000))
    result = fields.Raw(metadata={"not": {"type": "null"},
                                  "description": "the processor's result (any JSON but null)"})

    @validates_schema
    def not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        """An update must say something."""
        if not data:
            raise ValidationError("give at least one of status, progress, error_message, result")
        if "result" in data and data["result"] is None:
            raise ValidationError("must not be null", "result")


LIST_FILTERS = ("state", "status", "type", "priority")
SORT_KEYS = {"created_at": "created", "updated_at": "updated", "priority": "priority"}


class ListQuerySchema(Schema):
    """``GET /api/v1/tasks`` query string."""

    class Meta:
        unknown = RAISE

    page = fields.Integer(validate=validate.Range(min=1, max=1_000_000), load_default=1)
    page_size = fields.Integer(validate=validate.Range(1, 100), load_default=20)
    state = fields.String(validate=validate.OneOf(model.STATES))
    status = fields.String(validate=validate.OneOf(model.STATUSES))
    type = task_type()
    priority = Priority()
    sort_by = fields.String(validate=validate.OneOf(tuple(SORT_KEYS)), load_default="created_at")
    order = fields.String(validate=validate.OneOf(("asc", "desc")), load_default="desc")

    @post_load
    def index(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The filters (all must hold; a state outside the given status matches nothing), as
        ``filters`` and named in ``filter`` (``all`` or ``state:running,type:echo``)."""
        given = {name: data[name] for name in LIST_FILTERS if name in data}
        data["filters"] = given
        data["filter"] = ",".join(f"{n}:{v}" for n, v in given.items()) or "all"
        data["sort"] = SORT_KEYS[data["sort_by"]]
        return data


#: ``count`` of a stream page: at most this many entries, and this many when not given.
MAX_STREAM_PAGE = 1000
DEFAULT_STREAM_PAGE = 100


def stream_page_query(name: str, id_name: str, after_description: str | None = None,
                      ) -> type[Schema]:
    """The query-string schema (class ``name``) of a page of a Redis stream, oldest first.

    ``count``: 1-1000 entries (default 100); ``after``: the entry id (``1763800000000-0``,
    :data:`~celery_app.events.EVENT_ID_PATTERN`) of the last entry seen, exclusive; absent,
    the page starts at the oldest entry. Unknown parameters, a ``count`` out of range and an
    ``after`` that is not an entry id (the 400 says ``must be <id_name> such as …``) are
    refused. ``after_description`` documents ``after`` in the OpenAPI document.
    """

    def entry_id(value: str) -> None:
        if not is_event_id(value):
            raise ValidationError(f"must be {id_name} such as 1763800000000-0")

    after = {"pattern": EVENT_ID_PATTERN}
    if after_description:
        after["description"] = after_description
    return type(name, (Schema,), {
        "__doc__": f"A page of a stream: ``count`` entries after ``after`` ({id_name}).",
        "__module__": __name__,
        "Meta": type("Meta", (), {"unknown": RAISE}),
        "count": fields.Integer(validate=validate.Range(1, MAX_STREAM_PAGE),
                                load_default=DEFAULT_STREAM_PAGE),
        "after": fields.String(validate=entry_id, load_default=None, metadata=after),
    })


class PagedStream(Protocol):
    """A Redis stream read a page at a time (:class:`celery_app.audit.AuditLog`,
    :class:`celery_app.dlq.DeadLetters`)."""

    def page(self, count: int, after: str | None) -> tuple[list[dict[str, Any]], int]: ...


def stream_page(query: Schema, stream: PagedStream, args: dict[str, str]) -> dict[str, Any]:
    """The page of ``stream`` that the query string ``args`` (one value a name) asks for,
    loaded by ``query`` (a :func:`stream_page_query` schema): ``{"entries": [...], "size": n}``,
    entries oldest first, ``size`` the stream's length. Raises :class:`ValidationError` (a
    400) on a bad query."""
    loaded = query.load(args)
    entries, size = stream.page(loaded["count"], loaded["after"])
    return {"entries": entries, "size": size}


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or :class:`InvalidRequest` saying what is wrong.

    Parsed by :func:`celery_app.strictjson.loads` (the service's one JSON reader): duplicate
    keys, ``NaN``/``Infinity``, numbers beyond a double (``1e999``), lone surrogates and
    nesting deeper than 64 levels are refused, naming the field where there is one.
    """
    if not raw.strip():
        raise InvalidRequest("request body must be a JSON object")
    try:
        body = strictjson.loads(raw)
    except strictjson.InvalidJSON as exc:
        raise InvalidRequest(str(exc) if exc.located else f"invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body
