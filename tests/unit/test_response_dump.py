"""Response bodies: :class:`app.api.document.Dumper` answers exactly what ``schema.dump`` does
(same keys, order and values), for every response schema of the API and for odd values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from marshmallow import Schema, fields, post_dump

from app.api import responses
from app.api.document import Dumper

ENVELOPE = {
    "id": "8d3c0b9e-2f0c-4c1e-9d7a-1f2e3d4c5b6a",
    "task_id": "8d3c0b9e-2f0c-4c1e-9d7a-1f2e3d4c5b6a",
    "type": "echo",
    "payload": {"to": "user@example.com", "n": 2**60, "nested": {"a": [1, 2.5, None]}},
    "priority": "normal",
    "state": "pending",
    "status": "pending",
    "progress": 0,
    "attempts": 0,
    "max_retries": 3,
    "timeout": 300,
    "metadata": {},
    "created_at": "2026-11-30T06:38:42.123Z",
    "updated_at": "2026-11-30T06:38:42.123Z",
}

ODD_VALUES: list[Any] = [None, True, False, 0, 1.5, 2.0, -1, 2**70, "", "text", "ü\u2028",
                         [], [1, "a"], {}, {"k": {"x": None}}, ("t",)]


def response_schemas() -> list[type[Schema]]:
    return [value for value in vars(responses).values()
            if isinstance(value, type) and issubclass(value, Schema) and value is not Schema]


def same(schema: Schema, body: dict[str, Any]) -> None:
    expected = schema.dump(body)
    got = Dumper(schema).dump(body)
    assert got == expected
    assert list(got) == list(expected)
    assert json.dumps(got) == json.dumps(expected)


def test_envelope_as_submit_answers_it():
    same(responses.EnvelopeSchema(), ENVELOPE)
    same(responses.EnvelopeSchema(), {**ENVELOPE, "callback": {
        "state": "pending", "attempts": 0, "last_status": None, "last_error": None}})
    same(responses.EnvelopeSchema(), {**ENVELOPE, "unknown": 1, "result": {"ok": [1, 2]}})


@pytest.mark.parametrize("schema_class", response_schemas(), ids=lambda c: c.__name__)
def test_every_response_schema_with_odd_values_in_every_field(schema_class):
    schema = schema_class()
    for value in ODD_VALUES:
        body = dict.fromkeys(schema.fields, value)
        try:
            expected = schema.dump(body)
        except Exception as exc:  # noqa: BLE001 - whatever marshmallow raises, so must we
            with pytest.raises(type(exc)):
                Dumper(schema).dump(body)
            continue
        got = Dumper(schema).dump(body)
        assert got == expected and list(got) == list(expected), value
    same(schema, {})


def test_fields_marshmallow_would_treat_specially():
    class Odd(Schema):
        items = fields.String()  # absent from a dict body: marshmallow falls back to getattr
        renamed = fields.Integer(data_key="other")
        defaulted = fields.String(dump_default="d")
        sourced = fields.String(attribute="source")
        text_number = fields.Integer(as_string=True)
        typed_dict = fields.Dict(keys=fields.String(), values=fields.Integer())

    for body in ({}, {"renamed": 5, "source": "s", "text_number": 7, "typed_dict": {"a": 1.0}},
                 {"items": "x", "renamed": True, "defaulted": None, "text_number": None}):
        try:
            expected = Odd().dump(body)
        except Exception as exc:  # noqa: BLE001
            with pytest.raises(type(exc)):
                Dumper(Odd()).dump(body)
            continue
        assert Dumper(Odd()).dump(body) == expected


def test_a_schema_with_dump_hooks_is_dumped_by_marshmallow():
    class Hooked(Schema):
        name = fields.String()

        @post_dump
        def shout(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            return {k: v.upper() for k, v in data.items()}

    assert Dumper(Hooked()).dump({"name": "x"}) == {"name": "X"}


def test_a_copy_of_dict_fields_not_the_same_object():
    body = dict(ENVELOPE)
    dumped = Dumper(responses.EnvelopeSchema()).dump(body)
    assert dumped["payload"] == body["payload"] and dumped["payload"] is not body["payload"]
