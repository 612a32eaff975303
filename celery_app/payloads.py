"""A handler's payload rules, declared once in its signature and checked wherever a task
enters: the HTTP submit (400), a direct Celery publish (:class:`InvalidPayload` raised to the
caller) and, for a message that bypassed both, the worker (dead-lettered at once, never retried).

A parameter without a default is required; its annotation gives the JSON type (``str``,
``int``, ``float``, ``bool``, ``dict``, ``list``) and, through :data:`typing.Annotated`, any
marshmallow validators::

    def sleep(seconds: Annotated[float, Range(0, 3600)] = 1.0) -> dict: ...

``**kwargs`` admits keys the signature does not name. Types follow JSON Schema: ``5.0`` is an
integer, ``true`` is not a number, ``"5"`` is not an integer.
"""

from __future__ import annotations

import functools
import re
import typing
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields

import handlers

from .errors import InvalidRequest


class InvalidPayload(InvalidRequest, ValueError):
    """A payload that does not fit its handler's signature; names the field
    (``payload.seconds: Must be greater than or equal to 0 …``)."""


class StrictInteger(fields.Integer):
    """An integer that is really one: no bools, fractions or numeric strings in JSON bodies.

    ``5.0`` counts, as it does for JSON Schema's ``integer``.
    """

    def _validated(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictNumber(fields.Float):
    """A JSON number: no bools, no numeric strings, nothing infinite."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictBoolean(fields.Boolean):
    """``true`` or ``false`` only (marshmallow's own accepts 1, "yes", …)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


_FIELDS: dict[Any, type[fields.Field]] = {
    str: fields.String,
    int: StrictInteger,
    float: StrictNumber,
    bool: StrictBoolean,
    dict: fields.Dict,
}


def _field_for(annotation: Any, **kwargs: Any) -> fields.Field:
    """A JSON-Schema-faithful field for a parameter's (evaluated) annotation; validators from
    ``Annotated[...]`` metadata are attached."""
    validators = []
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
        validators = [extra for extra in extras if callable(extra)]
    if validators:
        kwargs["validate"] = validators
    base = typing.get_origin(annotation) or annotation
    if base in (list, tuple) or getattr(base, "__name__", "") in {"Sequence", "list"}:
        return fields.List(fields.Raw(), **kwargs)
    if getattr(base, "__name__", "") == "Mapping":
        base = dict
    return _FIELDS.get(base, fields.Raw)(**kwargs)


def _camel(task_type: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", task_type))


@functools.cache
def payload_schema(task_type: str) -> type[Schema]:
    """The marshmallow schema of the payload ``task_type``'s handler accepts."""
    import inspect

    handler = handlers.REGISTRY[task_type]
    hints = typing.get_type_hints(handler, include_extras=True)
    properties: dict[str, fields.Field] = {}
    open_ended = False
    for name, parameter in inspect.signature(handler).parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
            continue
        required = parameter.default is inspect.Parameter.empty
        extra = (
            {}
            if required or parameter.default is None
            else {"metadata": {"default": parameter.default}}
        )  # shown in the OpenAPI document
        properties[name] = _field_for(hints.get(name, Any), required=required, **extra)
    meta = type("Meta", (), {"unknown": INCLUDE if open_ended else RAISE})
    return type(f"{_camel(task_type)}PayloadSchema", (Schema,), {**properties, "Meta": meta})


@functools.cache
def payload_validator(task_type: str) -> Schema:
    """A reusable instance of :func:`payload_schema` (loading does not change it)."""
    return payload_schema(task_type)()


def check_payload(task_type: str, payload: Any, prefix: str = "payload") -> None:
    """:class:`InvalidPayload` naming each field of ``payload`` that ``task_type``'s handler
    refuses; nothing for a type that is not a handler."""
    if task_type not in handlers.REGISTRY:
        return
    if not isinstance(payload, dict):
        raise InvalidPayload(f"{prefix}: must be an object of keyword arguments")
    try:
        payload_validator(task_type).load(payload)
    except ValidationError as exc:
        raise InvalidPayload("; ".join(_lines(exc.messages, prefix))) from None


def _lines(messages: Any, prefix: str) -> list[str]:
    if isinstance(messages, dict):
        return [
            line
            for key, inner in messages.items()
            for line in _lines(inner, f"{prefix}.{key}" if key != "_schema" else prefix)
        ]
    if isinstance(messages, list):
        return [line for item in messages for line in _lines(item, prefix)]
    return [f"{prefix}: {messages}"]
