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

from marshmallow import Schema


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
        status: [s() for s in (schema if isinstance(schema, list) else [schema])]
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


def _shape(schemas: list[Schema], body: dict[str, Any]) -> dict[str, Any]:
    """Dump ``body`` through the first schema whose required fields it has."""
    for schema in schemas:
        required = {n for n, f in schema.fields.items() if f.required}
        if required <= body.keys():
            return schema.dump(body)
    raise ValueError(f"response body fits none of {[type(s).__name__ for s in schemas]}")


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
