"""The command line's pure parts: plain columns, times, task views, replay points, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest

from taskqueue_cli.bars import TaskView
from taskqueue_cli.client import Reply, error_of
from taskqueue_cli.follow import REPLAY_MARGIN_MS, replay_point
from taskqueue_cli.render import age, aligned, cell_text, duration
from taskqueue_cli.session import load_json


def test_plain_columns_are_padded_to_the_widest_cell_and_never_trail_spaces():
    text = aligned(["ID", "STATE"], [["a1", "completed"], ["b-longer", "-"]])
    assert text.splitlines() == ["ID        STATE", "a1        completed", "b-longer  -"]
    assert aligned(["ID", "STATE"], []) == "ID  STATE"


def test_cells_are_one_line_and_structures_are_compact_json():
    assert cell_text(None) == "-" and cell_text("") == "-"
    assert cell_text({"a": [1, True]}) == '{"a":[1,true]}'
    assert cell_text("two\nlines\tand  tabs") == "two lines and tabs"
    assert cell_text(0) == "0"


def test_ages_and_durations():
    now = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)
    assert age("2026-01-02T11:59:18.500Z", now) == "41s"
    assert age("2026-01-02T11:55:00Z", now) == "5m"
    assert age("2025-12-30T12:00:00Z", now) == "3d"
    assert age("not a time", now) == "-" and age(None, now) == "-"
    assert [duration(s) for s in (None, 0.04, 59.94, 61, 3723)] == [
        "-", "0.0s", "59.9s", "1:01", "1:02:03"]  # fmt: skip


def test_a_view_follows_events_and_its_elapsed_time_stops_between_executions():
    view = TaskView.of({"id": "t1", "type": "sleep", "state": "pending", "progress": 0})
    assert view.elapsed is None and view.short_id == "t1"
    events = [
        ("task.started", "running", 0, {}, "2026-01-01T00:00:00.000Z"),
        ("task.progress", "running", 40, {"message": "step 2 of 5"}, "2026-01-01T00:00:01.000Z"),
        ("task.failed", "running", 40, {"error": "boom"}, "2026-01-01T00:00:01.500Z"),
        ("task.retrying", "retrying", 40, {"error": "boom"}, "2026-01-01T00:00:01.500Z"),
    ]
    for kind, state, progress, extra, at in events:
        view.apply_event(
            {"type": kind, "timestamp": at, "data": {"state": state, "progress": progress, **extra}}
        )
    assert (view.state, view.progress, view.message) == ("retrying", 40, "boom")
    assert view.elapsed == pytest.approx(1.5)  # frozen until the next execution starts
    view.apply_event(
        {
            "type": "task.started",
            "timestamp": "2026-01-01T00:01:00.000Z",
            "data": {"state": "running", "progress": 0},
        }
    )
    assert view.message == "" and view.ended is None and view.elapsed > 1.5


def test_a_view_skips_events_its_envelope_already_reflects():
    envelope = {"id": "t1", "type": "sleep", "state": "running", "progress": 66,
                "updated_at": "2026-01-01T00:00:02.000Z"}  # fmt: skip
    view = TaskView.of(envelope)
    assert view.as_of_ms == 1767225602000

    def event(event_id: str, state: str, progress: int) -> dict:
        return {"id": event_id, "type": "task.progress",
                "timestamp": "2026-01-01T00:00:00.000Z",
                "data": {"state": state, "progress": progress}}  # fmt: skip

    assert view.reflects(event("1767225601999-5", "running", 33))
    assert not view.apply_event(event("1767225601999-5", "running", 33))
    assert (view.state, view.progress) == ("running", 66)
    assert not view.reflects(event("1767225602000-0", "running", 66))  # the envelope's own
    assert view.apply_event(event("1767225602500-0", "running", 100))
    assert view.progress == 100
    assert not TaskView("t2").reflects(event("1-0", "pending", 0))  # no envelope read


def test_short_ids_of_uuids_and_upload_ids():
    assert TaskView("3f2c4b1a-0000-4000-8000-000000000000").short_id == "3f2c4b1a"
    assert TaskView("task-1754556928-12a41dbec").short_id == "12a41dbec"


def test_the_replay_point_is_a_margin_before_the_servers_clock():
    reply = Reply(200, {}, "{}", date_ms=1_763_800_000_000)
    assert replay_point(reply) == f"{1_763_800_000_000 - REPLAY_MARGIN_MS}-0"


def test_error_bodies_give_their_message_and_others_a_short_summary():
    error = error_of(409, '{"error":"Conflict","message":"task cannot be cancelled"}')
    assert (error.status, error.error, error.message) == (
        409,
        "Conflict",
        "task cannot be cancelled",
    )
    proxy = error_of(502, "<html><body>\n Bad   gateway </body></html>", "Bad Gateway")
    assert proxy.message == "HTTP 502 Bad Gateway: <html><body> Bad gateway </body></html>"


def test_json_options_accept_text_and_files_and_refuse_anything_else(tmp_path):
    source = tmp_path / "p.json"
    source.write_text('{"a": 1}')
    assert load_json('{"a": 1}', "--payload") == {"a": 1} == load_json(f"@{source}", "--payload")
    assert load_json(None, "--payload") is None
    for bad in ("{nope", f"@{tmp_path / 'missing.json'}"):
        with pytest.raises(click.BadParameter):
            load_json(bad, "--payload")
