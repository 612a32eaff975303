"""The machine-readable contract: ``/openapi.json`` (OpenAPI 3.1) and ``/docs``.

:func:`build_spec` walks Flask's URL map and generates the document from each view's
declaration (:func:`app.api.document.document`) — a route without one fails the build, so
nothing can ship undocumented, and the documented shapes are the shapes served. This module
reads the API's declarations and schemas; nothing under ``app/api`` imports it. Swagger UI's
assets come from the ``flask-swagger-ui`` package; nothing is fetched from a CDN.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app
from flask_swagger_ui import get_swaggerui_blueprint
from marshmallow import Schema

import handlers

from .api.document import document, operation_meta
from .api.responses import ErrorSchema
from .api.schemas import payload_schema

#: Error statuses every operation can answer (the gate, unknown routes, Redis, bugs).
COMMON_ERRORS = (401, 403, 500, 503)
ERROR_TEXT = {
    400: "invalid input (the message names the field)", 401: "missing or invalid credentials",
    403: "role not allowed", 404: "not found", 405: "method not allowed",
    408: "the request body stalled too long",
    409: "state does not allow it", 413: "body too large",
    422: "Idempotency-Key already used with a different request", 500: "internal error",
    503: "Redis unavailable",
}
SECURITY = [{"ApiKey": []}, {"Bearer": []}]


def _external(summary: str, tags: tuple[str, ...], content: str, text: str,
              public: bool = False) -> dict[str, Any]:
    return operation_meta(summary=summary, tags=tags, responses={200: (content, text)},
                          public=public)


#: Endpoints whose views come from libraries (no decorator to put on them).
EXTERNAL = {
    "prometheus_metrics": _external("Prometheus metrics", ("operations",),
                                    "text/plain", "Prometheus text format", public=True),
    "swagger_ui.show": _external("Interactive API documentation", ("docs",), "text/html",
                                 "Swagger UI (assets served by the service)"),
}


def _path(rule: str) -> tuple[str, list[str]]:
    names = re.findall(r"<(?:[\w]+:)?(\w+)>", rule)
    return re.sub(r"<(?:[\w]+:)?(\w+)>", r"{\1}", rule), names


def _responses(meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, schema in meta["responses"].items():
        if isinstance(schema, tuple):
            content_type, text = schema
            out[str(status)] = {"description": text}
            if content_type:
                kind = "object" if content_type == "application/json" else "string"
                out[str(status)]["content"] = {content_type: {"schema": {"type": kind}}}
        else:
            schemas = schema if isinstance(schema, list) else [schema]
            body = {"oneOf": schemas} if len(schemas) > 1 else schemas[0]
            response = {"description": " or ".join(
                            (s.__doc__ or s.__name__).strip().splitlines()[0] for s in schemas),
                        "content": {"application/json": {"schema": body}}}
            if status in meta["links"]:
                response["links"] = meta["links"][status]
            out[str(status)] = response
    errors = (set(meta["errors"]) | set(COMMON_ERRORS)) - set(meta["responses"])
    if meta["body"] or meta["query"] or meta["multipart"]:
        errors.add(400)
    if meta["body"] or meta["multipart"]:
        errors.add(413)
    if meta["public"]:
        errors -= {401, 403}
    for status in sorted(errors):
        out[str(status)] = {"description": ERROR_TEXT[status],
                            "content": {"application/json": {"schema": "Error"}}}
    return out


def _operation(meta: dict[str, Any], path_params: list[str], endpoint: str) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": endpoint.replace(".", "_").lstrip("_"),
                                 "summary": meta["summary"], "tags": list(meta["tags"]),
                                 "responses": _responses(meta),
                                 "security": [] if meta["public"] else SECURITY}
    if meta["description"]:
        operation["description"] = meta["description"]
    parameters: list[dict[str, Any]] = [
        {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
        for name in path_params
    ]
    if meta["query"]:
        parameters.append({"in": "query", "schema": meta["query"]})
    if parameters:
        operation["parameters"] = parameters
    if meta["body"]:
        body = meta["body"]
        schema = {"oneOf": body} if isinstance(body, list) else body
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": schema}}}
    if meta["multipart"]:
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {
            "schema": meta["multipart"],
            "encoding": {"metadata": {"contentType": "application/json"}}}}}
    return operation


def _schemas_with_extras(app: Flask) -> list[type[Schema]]:
    """Input schemas that carry JSON-Schema keywords marshmallow cannot express."""
    found: list[type[Schema]] = []
    for view in app.view_functions.values():
        meta = getattr(view, "__openapi__", {})
        for key in ("body", "query", "multipart"):
            value = meta.get(key)
            for schema in value if isinstance(value, list) else [value]:
                if hasattr(schema, "OPENAPI_EXTRA") and schema not in found:
                    found.append(schema)
    return found


class UndocumentedRoute(RuntimeError):
    """A route without a :func:`~app.api.document.document` declaration."""


def _unique(operation_id: str, method: str, names: list[str], used: set[str]) -> str:
    """``operation_id``, qualified by path parameters and method when another operation of
    the same endpoint already has it (``/docs`` and ``/docs/{path}`` share one view)."""
    for candidate in (operation_id, "_".join([operation_id, *names]),
                      "_".join([operation_id, *names, method.lower()])):
        if candidate not in used:
            used.add(candidate)
            return candidate
    raise ValueError(f"no unique operationId for {operation_id}")


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``, from its URL map and the views' declarations.

    It describes the deployment serving it: with auth off (``AUTH_ENABLED=false``) no
    operation declares a security requirement and no scheme is listed, so clients and
    fuzzers do not expect credentials the service never asks for.
    """
    auth_enabled = app.extensions["taskqueue"].settings.auth_enabled
    spec = APISpec(
        title="taskqueue", version=version("taskqueue"), openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": "HTTP and WebSocket API in front of Celery workers on Redis."},
    )
    if auth_enabled:
        spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header",
                                                   "name": "X-API-Key"})
        spec.components.security_scheme("Bearer", {"type": "http", "scheme": "bearer",
                                                   "bearerFormat": "JWT"})
    spec.components.schema("Error", schema=ErrorSchema)
    for extra in _schemas_with_extras(app):
        spec.components.schema(extra.__name__.removesuffix("Schema"),
                               component=extra.OPENAPI_EXTRA, schema=extra)
    paths: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "__openapi__", None) or EXTERNAL.get(rule.endpoint)
        if meta is None:
            raise UndocumentedRoute(f"{rule.rule} ({rule.endpoint}) has no @document")
        path, names = _path(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = _operation(meta, names, rule.endpoint)
            operation["operationId"] = _unique(operation["operationId"], method, names, used)
            if rule.websocket:
                operation["responses"]["426"] = {
                    "description": "a plain HTTP request: this route speaks WebSocket only",
                    "content": {"application/json": {"schema": "Error"}}}
            if not auth_enabled:  # no credentials are asked for, so none are refused
                operation["security"] = []
                for status in ("401", "403"):
                    operation["responses"].pop(status, None)
            paths.setdefault(path, {})[method.lower()] = operation
    for path in sorted(paths):
        spec.path(path=path, operations=paths[path])
    variants = _payload_variants(spec)  # registers the payload components first
    document_ = spec.to_dict()
    schemas = document_["components"]["schemas"]
    if "Submit" in schemas:
        # One complete object per task type (a generated client gets a model for each, with
        # every field), chosen by "type".
        submit = schemas["Submit"]
        common = {k: v for k, v in submit["properties"].items() if k not in {"type", "payload"}}
        refs = {}
        for variant in variants:
            variant["properties"].update(common)
            variant.update(type="object", additionalProperties=False,
                           required=["type", *variant.get("required", [])])
            schemas[variant["title"]] = variant
            task_type = variant["properties"]["type"]["const"]
            refs[task_type] = f"#/components/schemas/{variant['title']}"
        schemas["Submit"] = {"description": submit.get("description", "A task to run"),
                             "oneOf": [{"$ref": ref} for ref in refs.values()],
                             "discriminator": {"propertyName": "type", "mapping": refs}}
    return document_


def _payload_variants(spec: APISpec) -> list[dict[str, Any]]:
    """One variant per task type: ``type`` names the handler, ``payload`` fits its signature."""
    variants = []
    for name in sorted(handlers.load()):
        schema = payload_schema(name)
        component = schema.__name__.removesuffix("Schema")
        spec.components.schema(component, schema=schema)
        variant: dict[str, Any] = {"title": f"Submit{component.removesuffix('Payload')}",
                                   "properties": {
            "type": {"const": name},
            "payload": {"$ref": f"#/components/schemas/{component}"}}}
        if any(field.required for field in schema._declared_fields.values()):
            variant["required"] = ["payload"]
        variants.append(variant)
    return variants


bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
@document(summary="This document", tags=("docs",),
          responses={200: ("application/json", "OpenAPI 3.1 document")})
def openapi_json():
    """The OpenAPI document (built once per process)."""
    if "taskqueue_openapi" not in current_app.extensions:
        current_app.extensions["taskqueue_openapi"] = build_spec(current_app)
    return current_app.extensions["taskqueue_openapi"]


def init_app(app: Flask) -> None:
    """Serve ``/openapi.json`` and ``/docs``."""
    app.register_blueprint(bp)
    app.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json",
                                                   config={"app_name": "taskqueue"}))
