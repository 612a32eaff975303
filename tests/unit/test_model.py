"""The envelope codec and the time helpers of ``celery_app.model``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from celery_app import model


def _stored(envelope):
    """What Redis (decode_responses=True) hands back for an encoded envelope."""
    return {name: str(value) for name, value in model.encode(envelope).items()}


def test_json_fields_round_trip_exactly_including_big_ints_empty_lists_and_unicode():
    envelope = {
        "id": "t1",
        "payload": {
            "n": 2**60,
            "empty": [],
            "obj": {},
            "text": "héllo ✓ 日本",
            "f": 1.5,
            "none": None,
        },
        "metadata": {"tags": [], "nested": {"deep": [1, [2, [3]]]}, "emoji": "🚀"},
        "result": [2**60 + 1, -(2**63), "ü"],
    }
    decoded = model.decode(_stored(envelope))
    assert decoded["payload"] == envelope["payload"]
    assert decoded["payload"]["n"] == 2**60 and isinstance(decoded["payload"]["n"], int)
    assert decoded["payload"]["empty"] == [] and decoded["payload"]["obj"] == {}
    assert decoded["metadata"] == envelope["metadata"]
    assert decoded["result"] == envelope["result"]


def test_result_may_be_any_json_value():
    for result in (0, "", [], {}, False, "text", 3.25):
        assert model.decode(_stored({"result": result}))["result"] == result


def test_encode_stores_json_fields_as_compact_unescaped_json():
    fields = model.encode({"payload": {"a": [1, 2], "b": "é"}})
    assert fields["payload"] == '{"a":[1,2],"b":"é"}'


def test_encode_omits_none_values():
    fields = model.encode({"id": "t1", "error": None, "result": None, "scheduled_at": None})
    assert fields == {"id": "t1"}


def test_encode_turns_bools_into_ints_and_keeps_scalars():
    fields = model.encode({"flag": True, "other": False, "attempts": 2, "state": "pending"})
    assert fields == {"flag": 1, "other": 0, "attempts": 2, "state": "pending"}


def test_decode_parses_int_fields():
    decoded = model.decode(
        {"progress": "50", "attempts": "2", "max_retries": "3", "timeout": "300", "file_size": "12"}
    )
    assert decoded == {
        "progress": 50,
        "attempts": 2,
        "max_retries": 3,
        "timeout": 300,
        "file_size": 12,
    }
    assert all(type(value) is int for value in decoded.values())


def test_decode_hides_private_bookkeeping_fields():
    decoded = model.decode(
        {
            "id": "t1",
            "delivery": "d-1",
            "created_ms": "1700000000000",
            "started_ms": "1700000000001",
        }
    )
    assert "delivery" not in decoded
    assert "created_ms" not in decoded
    assert "started_ms" not in decoded


def test_decode_omits_empty_values():
    assert model.decode({"id": "t1", "error": "", "worker_id": ""}) == {"id": "t1", "task_id": "t1"}


def test_task_id_mirrors_id():
    decoded = model.decode({"id": "task-1754556928-12a41dbec"})
    assert decoded["task_id"] == decoded["id"] == "task-1754556928-12a41dbec"


def test_error_message_mirrors_error():
    decoded = model.decode({"error": "RuntimeError: boom"})
    assert decoded["error_message"] == decoded["error"] == "RuntimeError: boom"


def test_no_error_means_no_error_message():
    assert "error_message" not in model.decode({"id": "t1", "state": "completed"})


EXPECTED_STATUS = {
    "pending": "pending",
    "scheduled": "pending",
    "retrying": "pending",
    "running": "processing",
    "completed": "completed",
    "failed": "failed",
    "dead_letter": "failed",
    "cancelled": "cancelled",
}


def test_every_state_has_a_documented_status():
    assert set(EXPECTED_STATUS) == set(model.STATES)
    assert set(EXPECTED_STATUS.values()) == set(model.STATUSES)


@pytest.mark.parametrize(("state", "status"), sorted(EXPECTED_STATUS.items()))
def test_status_is_derived_from_state(state, status):
    assert model.decode({"state": state})["status"] == status


def test_stored_status_field_is_overridden_by_the_state():
    assert model.decode({"state": "running", "status": "pending"})["status"] == "processing"


def test_final_states_are_completed_failed_dead_letter_cancelled():
    assert {"completed", "failed", "dead_letter", "cancelled"} == model.FINAL_STATES


def test_priorities_map_names_to_numbers_and_back():
    assert model.PRIORITIES == {"low": 0, "normal": 1, "high": 2, "critical": 3}
    assert model.PRIORITY_NAMES == {0: "low", 1: "normal", 2: "high", 3: "critical"}
    assert model.DEFAULT_PRIORITY == "low"
    assert model.QUEUES == ("critical", "high", "normal", "low")


def test_new_task_id_is_a_uuid4():
    task_id = model.new_task_id()
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", task_id
    )
    assert model.new_task_id() != task_id


ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def test_iso_has_milliseconds_and_z():
    moment = datetime(2025, 8, 7, 9, 5, 3, 123456, tzinfo=UTC)
    assert model.iso(moment) == "2025-08-07T09:05:03.123Z"


def test_iso_pads_milliseconds_to_three_digits():
    assert model.iso(datetime(2025, 1, 2, 3, 4, 5, 7000, tzinfo=UTC)) == "2025-01-02T03:04:05.007Z"
    assert model.iso(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2025-01-02T03:04:05.000Z"


def test_iso_converts_a_non_utc_aware_datetime_to_utc():
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2025, 1, 1, 1, 30, 0, 250000, tzinfo=plus_two)
    assert model.iso(moment) == "2024-12-31T23:30:00.250Z"
    minus_five_thirty = timezone(-timedelta(hours=5, minutes=30))
    assert (
        model.iso(datetime(2025, 6, 1, 20, 0, tzinfo=minus_five_thirty))
        == "2025-06-02T01:30:00.000Z"
    )


def test_now_is_aware_utc_and_iso_formats_it():
    moment = model.now()
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)
    assert ISO_RE.fullmatch(model.iso(moment))


def test_ms_counts_milliseconds_since_the_epoch():
    assert model.ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert model.ms(datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)) == 1_700_000_000_000
    assert model.ms(datetime(2023, 11, 14, 22, 13, 20, 123999, tzinfo=UTC)) == 1_700_000_000_123


def test_ms_is_independent_of_the_timezone():
    utc = datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
    assert model.ms(utc.astimezone(timezone(timedelta(hours=-7)))) == model.ms(utc)


def test_ms_is_exact_for_whole_milliseconds():
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for step in range(0, 5000, 1):
        moment = base + timedelta(milliseconds=step)
        assert model.ms(moment) == 1_735_689_600_000 + step
