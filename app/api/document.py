"""Declaring a view's operation: :func:`document` and the links between operations.

A view says which marshmallow schemas validate its input and which schema each response
status is dumped through; the decorator applies the response schemas to every successful body
and keeps the declaration on the view (``__openapi__``), where the spec builder
(``app/openapi.py``) reads it. This module imports no view and no spec builder, so views and
the builder depend on it and never on each other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP


def operation_meta(
    *,
    summary: str,
    tags: tuple[str, ...],
    responses: dict[int, Any],
    body: type[Schema] | list[type[Schema]] | None = None,
    query: type[Schema] | None = None,
    multipart: type[Schema] | None = None,
    errors: tuple[int, ...] = (),
    public: bool = False,
    description: str | None = None,
    links: dict[int, Any] | None = None,
) -> dict[str, Any]:
    """One operation's declaration as the spec builder reads it (see :func:`document`)."""
    return {
        "summary": summary,
        "tags": tags,
        "responses": responses,
        "body": body,
        "query": query,
        "multipart": multipart,
        "errors": errors,
        "public": public,
        "description": description,
        "links": links or {},
    }


def document(
    *,
    summary: str,
    tags: tuple[str, ...],
    responses: dict[int, Any],
    body: type[Schema] | list[type[Schema]] | None = None,
    query: type[Schema] | None = None,
    multipart: type[Schema] | None = None,
    errors: tuple[int, ...] = (),
    public: bool = False,
    description: str | None = None,
    links: dict[str, Any] | None = None,
) -> Callable:
    """Declare a view's operation; successful bodies are dumped through ``responses[status]``.

    A response value is a Schema class (JSON body), a list of them (the first whose required
    fields the body has), or a ``(content type, description)`` pair for anything else.
    ``errors`` lists statuses beyond the common ones (401, 403, 500, 503; 400 and 413 follow
    from an input schema); ``public`` routes need no credentials; ``links`` are OpenAPI links
    per status (see :func:`task_links`).
    """
    meta = operation_meta(
        summary=summary,
        tags=tags,
        responses=responses,
        body=body,
        query=query,
        multipart=multipart,
        errors=errors,
        public=public,
        description=description,
        links=links,
    )
    dumpers = {
        status: [Dumper(s()) for s in (schema if isinstance(schema, list) else [schema])]
        for status, schema in responses.items()
        if not isinstance(schema, tuple)
    }

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def shaped(*args: Any, **kwargs: Any) -> Any:
            result = view(*args, **kwargs)
            body_, status = result if isinstance(result, tuple) else (result, 200)
            if status not in dumpers or not isinstance(body_, dict):
                return result
            return _shape(dumpers[status], body_), status

        shaped.__openapi__ = meta
        return shaped

    return decorate


def _shape(dumpers: list[Dumper], body: dict[str, Any]) -> dict[str, Any]:
    """Dump ``body`` through the first schema whose required fields it has."""
    for dumper in dumpers:
        if dumper.required <= body.keys():
            return dumper.dump(body)
    raise ValueError(f"response body fits none of {[type(d.schema).__name__ for d in dumpers]}")


def _as_is(value: Any) -> Any:
    return value


#: Field classes whose dump of a value of the given exact type is the value itself (a
#: shallow copy for a dict): String → ``ensure_text_type``, Integer → ``int``, Dict without
#: key/value fields → ``dict(value)``, Raw → the value. ``None`` dumps as ``None`` for all.
_PLAIN_FIELDS: dict[type[fields.Field], tuple[type, Callable[[Any], Any]]] = {
    fields.String: (str, _as_is),
    fields.Integer: (int, _as_is),
    fields.Dict: (dict, dict),
    fields.Raw: (object, _as_is),
}


def _dumps_plainly(name: str, field: fields.Field) -> bool:
    """Whether marshmallow reads ``body[name]`` for ``field`` and dumps a value of the
    field's plain type unchanged: no other attribute, default, dotted path or dict attribute
    of the same name (marshmallow falls back to ``getattr(body, name)`` for a missing key),
    no numbers as text, no key or value fields of a dict."""
    return (
        field.attribute is None
        and field.dump_default is missing
        and "." not in name
        and not hasattr(dict, name)
        and not getattr(field, "as_string", False)
        and getattr(field, "num_type", int) is int
        and getattr(field, "key_field", None) is None
        and getattr(field, "value_field", None) is None
        and getattr(field, "mapping_type", dict) is dict
    )


class Dumper:
    """``schema.dump`` of a response body, without marshmallow's per-field machinery where it
    changes nothing: a field of a class in :data:`_PLAIN_FIELDS` whose value has that exact
    type (or is ``None``) is copied as marshmallow would dump it; every other field (nested
    schemas, renamed or defaulted fields, unexpected types) goes through the field's own
    ``serialize``. Same keys, order and values as ``schema.dump`` (``tests/unit``), in a
    fraction of the time. A schema with dump hooks or ``many`` always uses ``schema.dump``."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.required = frozenset(n for n, f in schema.fields.items() if f.required)
        hooks = schema._hooks
        self._plain = not (hooks[PRE_DUMP] or hooks[POST_DUMP] or schema.many
                           or type(schema).get_attribute is not Schema.get_attribute)
        self._fields: list[tuple[str, str, fields.Field, type | None, Any]] = []
        for name, field in schema.dump_fields.items():
            key = field.data_key if field.data_key is not None else name
            kind, copy = _PLAIN_FIELDS.get(type(field), (None, None))
            plain = kind is not None and _dumps_plainly(name, field)
            self._fields.append((name, key, field, kind if plain else None, copy))

    def dump(self, body: dict[str, Any]) -> dict[str, Any]:
        """What ``schema.dump(body)`` returns."""
        if not self._plain or type(body) is not dict:
            return self.schema.dump(body)
        result = self.schema.dict_class()
        accessor = self.schema.get_attribute
        for name, key, field, kind, copy in self._fields:
            if kind is not None:
                if name not in body:
                    continue  # missing: marshmallow leaves it out
                value = body[name]
                if value is None:
                    result[key] = None
                    continue
                if kind is object or (type(value) is kind):
                    result[key] = copy(value)
                    continue
            value = field.serialize(name, body, accessor=accessor)
            if value is not missing:
                result[key] = value
        return result


def task_links(id_field: str = "id") -> dict[str, Any]:
    """OpenAPI links from a created task to the operations on it (for stateful testing)."""
    ref = {"task_id": f"$response.body#/{id_field}"}
    return {
        name: {"operationId": operation, "parameters": ref}
        for name, operation in (
            ("GetTask", "tasks_get"),
            ("CancelTask", "tasks_cancel"),
            ("ReportOnTask", "tasks_patch"),
            ("RetryTask", "tasks_retry"),
        )
    }
