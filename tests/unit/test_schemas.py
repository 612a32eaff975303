"""Request validation of the task API: submit and list schemas, JSON bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import ValidationError

import handlers
from app.api.schemas import MAX_JSON_DEPTH, ListQuerySchema, SubmitSchema, parse_json_object
from celery_app.errors import InvalidRequest

handlers.load()


def submit(**body):
    return SubmitSchema().load(body)


def submit_errors(**body) -> dict:
    with pytest.raises(ValidationError) as caught:
        SubmitSchema().load(body)
    return caught.value.messages


def query(**params):
    return ListQuerySchema().load(params)


def query_errors(**params) -> dict:
    with pytest.raises(ValidationError) as caught:
        ListQuerySchema().load(params)
    return caught.value.messages


# -- submit -------------------------------------------------------------------------------------


def test_shipped_handlers_are_registered():
    assert {"echo", "sleep", "fail"} <= set(handlers.REGISTRY)


def test_submit_defaults():
    data = submit(type="echo")
    assert data["type"] == "echo"
    assert data["priority"] == "low"
    assert data["max_retries"] == 3
    assert data["timeout"] == 300
    assert data["payload"] == {}
    assert data["metadata"] == {}
    assert data["scheduled_at"] is None


def test_default_payload_and_metadata_are_fresh_dicts():
    first, second = submit(type="echo"), submit(type="echo")
    first["payload"]["x"] = 1
    assert second["payload"] == {}
    assert first["metadata"] is not first["payload"]


def test_submit_keeps_payload_and_metadata_as_given():
    payload = {"n": 2**60, "list": [], "nested": {"a": [1, {"b": None}]}, "text": "é"}
    metadata = {"owner": "me", "tags": ["a", "b"]}
    data = submit(type="echo", payload=payload, metadata=metadata)
    assert data["payload"] == payload
    assert data["metadata"] == metadata


@pytest.mark.parametrize(
    ("given", "name"),
    [
        (0, "low"),
        (1, "normal"),
        (2, "high"),
        (3, "critical"),
        ("0", "low"),
        ("1", "normal"),
        ("2", "high"),
        ("3", "critical"),
        ("low", "low"),
    ],
)
def test_priority_accepts_numbers_and_names(given, name):
    assert submit(type="echo", priority=given)["priority"] == name


@pytest.mark.parametrize(("given", "name"), [(0.0, "low"), (1.0, "normal"), (3.0, "critical"),
                                             (-0.0, "low")])
def test_integral_priority_numbers_count_as_integers_as_in_json_schema(given, name):
    assert submit(type="echo", priority=given)["priority"] == name


@pytest.mark.parametrize(
    "given", [4, -1, True, False, 1.5, 4.0, -0.5, "urgent", "4", "-1", "1.0", "", None, [1],
              {"p": 1}]
)
def test_priority_rejects_anything_else(given):
    assert "priority" in submit_errors(type="echo", priority=given)


@pytest.mark.parametrize("digit", ["²", "١", "٣"])
def test_priority_rejects_non_ascii_digits_as_a_validation_error(digit):
    assert "priority" in submit_errors(type="echo", priority=digit)


@pytest.mark.parametrize("value", [0, 1, 50, 100])
def test_max_retries_accepts_zero_to_one_hundred(value):
    assert submit(type="echo", max_retries=value)["max_retries"] == value


@pytest.mark.parametrize("value", [-1, 101, 10**30, True, False, 2.5, "3", None])
def test_max_retries_rejects_out_of_range_bools_floats_and_strings(value):
    assert "max_retries" in submit_errors(type="echo", max_retries=value)


@pytest.mark.parametrize("value", [1, 300, 86_400])
def test_timeout_accepts_one_to_a_day(value):
    assert submit(type="echo", timeout=value)["timeout"] == value


@pytest.mark.parametrize("value", [0, -5, 86_401, True, 0.5, "300", None])
def test_timeout_rejects_out_of_range_bools_floats_and_strings(value):
    assert "timeout" in submit_errors(type="echo", timeout=value)


def test_an_unknown_field_is_rejected_by_name():
    errors = submit_errors(type="echo", bogus=1)
    assert list(errors) == ["bogus"]


def test_a_missing_type_is_rejected():
    assert "type" in submit_errors(payload={})


@pytest.mark.parametrize("value", ["no-such-handler", "", "ECHO", 5, None])
def test_an_unknown_or_non_string_type_is_rejected(value):
    assert "type" in submit_errors(type=value)


def test_unknown_type_message_names_the_type():
    assert "no-such-handler" in submit_errors(type="no-such-handler")["type"][0]


def test_payload_that_does_not_fit_the_handler_signature_is_rejected_under_payload():
    errors = submit_errors(type="sleep", payload={"bogus": 1})
    assert list(errors) == ["payload"]
    assert "bogus" in str(errors["payload"])


def test_payload_that_fits_the_handler_signature_is_accepted():
    assert submit(type="sleep", payload={"seconds": 0.1, "steps": 2})["payload"] == {
        "seconds": 0.1,
        "steps": 2,
    }
    assert submit(type="fail", payload={"message": "x", "permanent": True})["type"] == "fail"
    assert submit(type="echo", payload={"anything": 1, "goes": [2]})["payload"]["goes"] == [2]


def test_fail_handler_rejects_extra_payload_keys():
    assert "payload" in submit_errors(type="fail", payload={"msg": "typo"})


@pytest.mark.parametrize("field", ["payload", "metadata"])
@pytest.mark.parametrize("value", [[], [1, 2], "text", 1, True, None])
def test_payload_and_metadata_must_be_objects(field, value):
    assert field in submit_errors(type="echo", **{field: value})


def test_scheduled_at_with_an_offset_is_an_aware_datetime_at_that_instant():
    data = submit(type="echo", scheduled_at="2030-01-01T02:00:00+02:00")
    moment = data["scheduled_at"]
    assert isinstance(moment, datetime) and moment.tzinfo is not None
    assert moment == datetime(2030, 1, 1, 0, 0, tzinfo=UTC)


def test_scheduled_at_with_z_is_utc():
    moment = submit(type="echo", scheduled_at="2030-05-06T07:08:09.123Z")["scheduled_at"]
    assert moment == datetime(2030, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


def test_naive_scheduled_at_is_treated_as_utc():
    moment = submit(type="echo", scheduled_at="2030-01-01T00:00:00")["scheduled_at"]
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)
    assert moment == datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", ["tomorrow", "2030-13-01T00:00:00Z", 1_700_000_000, True])
def test_scheduled_at_must_be_an_iso_datetime(value):
    assert "scheduled_at" in submit_errors(type="echo", scheduled_at=value)


def test_several_bad_fields_are_all_named():
    errors = submit_errors(type="echo", priority="urgent", timeout=0, extra=1)
    assert {"priority", "timeout", "extra"} <= set(errors)


# -- list query ---------------------------------------------------------------------------------


def test_list_query_defaults():
    data = query()
    assert data["page"] == 1
    assert data["page_size"] == 20
    assert data["sort"] == "created"
    assert data["order"] == "desc"
    assert data["filter"] == "all"


def test_list_query_parses_numeric_strings():
    data = query(page="3", page_size="100", order="asc")
    assert (data["page"], data["page_size"], data["order"]) == (3, 100, "asc")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "running"}, "state:running"),
        ({"state": "dead_letter"}, "state:dead_letter"),
        ({"status": "processing"}, "status:processing"),
        ({"status": "failed"}, "status:failed"),
        ({"type": "echo"}, "type:echo"),
    ],
)
def test_list_filter_names_the_index(params, expected):
    assert query(**params)["filter"] == expected


@pytest.mark.parametrize(
    ("sort_by", "sort"),
    [("created_at", "created"), ("updated_at", "updated"), ("priority", "priority")],
)
def test_sort_by_maps_to_the_index_sort(sort_by, sort):
    assert query(sort_by=sort_by)["sort"] == sort


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "x"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "101"}, "page_size"),
        ({"page_size": "many"}, "page_size"),
        ({"state": "done"}, "state"),
        ({"state": "processing"}, "state"),
        ({"status": "running"}, "status"),
        ({"status": "dead_letter"}, "status"),
        ({"type": "no-such-handler"}, "type"),
        ({"sort_by": "created"}, "sort_by"),
        ({"sort_by": "id"}, "sort_by"),
        ({"order": "ascending"}, "order"),
        ({"order": "DESC"}, "order"),
        ({"limit": "10"}, "limit"),
    ],
)
def test_invalid_list_query_is_rejected_naming_the_parameter(params, field):
    assert field in query_errors(**params)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "running", "type": "echo"}, "state:running,type:echo"),
        ({"state": "running", "status": "processing"}, "state:running,status:processing"),
        ({"status": "pending", "type": "echo"}, "status:pending,type:echo"),
        ({"state": "pending", "status": "pending", "type": "echo"},
         "state:pending,status:pending,type:echo"),
        ({"status": "failed", "priority": "2"}, "status:failed,priority:high"),
    ],
)
def test_filters_combine(params, expected):
    data = query(**params)
    assert data["filter"] == expected
    assert data["filters"] == dict(item.split(":") for item in expected.split(","))


# -- JSON bodies --------------------------------------------------------------------------------


def _invalid(raw: bytes) -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_object(raw)
    assert caught.value.status == 400
    return str(caught.value)


def test_a_normal_object_is_parsed():
    assert parse_json_object(
        b'{"type": "echo", "payload": {"n": 1152921504606846976, "l": []}}'
    ) == {
        "type": "echo",
        "payload": {"n": 2**60, "l": []},
    }


def test_a_unicode_body_is_parsed():
    assert parse_json_object('{"t": "日本 ✓"}'.encode()) == {"t": "日本 ✓"}


@pytest.mark.parametrize("raw", [b"", b"   ", b"\n\t"])
def test_an_empty_body_is_rejected(raw):
    assert "JSON object" in _invalid(raw)


@pytest.mark.parametrize("raw", [b"{", b"{'a': 1}", b'{"a": 1,}', b"not json", b"\xff\xfe"])
def test_invalid_json_is_rejected(raw):
    assert "invalid JSON" in _invalid(raw)


@pytest.mark.parametrize("raw", [b"[]", b'[{"a": 1}]', b'"text"', b"42", b"null", b"true"])
def test_non_object_json_is_rejected(raw):
    assert "must be a JSON object" in _invalid(raw)


def test_duplicate_keys_are_rejected():
    message = _invalid(b'{"type": "echo", "type": "sleep"}')
    assert "duplicate" in message and "type" in message


def test_duplicate_keys_in_a_nested_object_are_rejected():
    assert "duplicate" in _invalid(b'{"payload": {"a": 1, "a": 2}}')


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected(constant):
    assert constant in _invalid(f'{{"x": {constant}}}'.encode())


def _nested(levels: int) -> bytes:
    return ('{"a":' * levels + "1" + "}" * levels).encode()


def test_moderately_nested_json_is_accepted():
    body = parse_json_object(_nested(MAX_JSON_DEPTH // 2))
    assert isinstance(body["a"], dict)


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, MAX_JSON_DEPTH + 10, 500])
def test_json_nested_deeper_than_the_limit_is_rejected(levels):
    assert "nested deeper" in _invalid(_nested(levels))


def test_nested_lists_count_towards_the_depth():
    raw = ('{"a":' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}").encode()
    assert "nested deeper" in _invalid(raw)


def test_pathologically_deep_json_is_rejected_not_crashed():
    raw = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(InvalidRequest):
        parse_json_object(raw)


def test_max_json_depth_is_64():
    assert MAX_JSON_DEPTH == 64
    assert json.loads(_nested(3)) == {"a": {"a": {"a": 1}}}


def test_depth_counts_objects_and_arrays_not_scalar_leaves():
    at_limit = '{"a":' * (MAX_JSON_DEPTH - 1) + '{"leaf": 1}' + "}" * (MAX_JSON_DEPTH - 1)
    assert parse_json_object(at_limit.encode())
    over = '{"a":' * MAX_JSON_DEPTH + '{"leaf": 1}' + "}" * MAX_JSON_DEPTH
    with pytest.raises(InvalidRequest, match="nested deeper"):
        parse_json_object(over.encode())


@pytest.mark.parametrize("given", ["Normal", "HIGH", "cRiTiCaL", " high "])
def test_priority_names_are_exact(given):
    assert "priority" in submit_errors(type="echo", priority=given)


def test_integral_floats_count_as_integers_as_in_json_schema():
    loaded = submit(type="echo", max_retries=3.0, timeout=300.0)
    assert (loaded["max_retries"], loaded["timeout"]) == (3, 300)
    assert type(loaded["max_retries"]) is int
