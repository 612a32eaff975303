"""``taskqueue`` task commands: submit, upload, get, ls, cancel, retry, purge, stats — their
output (piped and ``--json``), ``--wait`` on each kind of ending, and exit statuses."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.harness import free_port

from .conftest import Cli, Stack

COMMANDS = [
    "submit", "upload", "get", "ls", "cancel", "retry", "purge", "stats", "watch", "workers",
    "queues", "pause", "resume", "queue", "queue pause", "queue resume", "dlq", "dlq ls",
    "dlq retry", "dlq retry-all", "dlq clear",
]  # fmt: skip


def test_every_command_has_help_and_the_global_options(stack: Stack):
    top = stack.cli("--help").out
    for option in ("--url", "--api-key", "--token", "TASKQUEUE_URL", "TASKQUEUE_API_KEY"):
        assert option in top
    helps = stack.cli.many(*[[*command.split(), "--help"] for command in COMMANDS])
    for command, run in zip(COMMANDS, helps, strict=True):
        assert run.code == 0 and f"Usage: taskqueue {command}" in run.out, command
        if command not in {"queue", "dlq"}:  # groups: their commands have it
            assert "--json" in run.out, command


def test_submit_prints_the_id_and_get_json_is_the_api_body(stack: Stack):
    task_id = stack.cli("submit", "echo", "--payload", '{"n": 1}', "--priority", "high").out
    task_id = task_id.strip()
    envelope = stack.wait_state(task_id, "completed")
    assert envelope["priority"] == "high" and envelope["result"] == {"n": 1}
    printed = stack.cli("get", task_id, "--json").out
    assert printed.strip() == stack.api("GET", f"/api/v1/tasks/{task_id}").text.strip()
    shown = stack.cli("get", task_id).out
    assert task_id in shown and "completed" in shown and '{"n":1}' in shown


def test_submit_sends_every_option_and_json_prints_the_created_envelope(stack: Stack, tmp_path):
    payload = tmp_path / "payload.json"
    payload.write_text('{"seconds": 0.1}')
    run = stack.cli(
        "submit", "sleep", "--payload", f"@{payload}", "--priority", "2", "--max-retries", "5",
        "--timeout", "60", "--metadata", '{"from": "cli"}', "--scheduled-at",
        "2099-01-01T00:00:00Z", "--json",
    )  # fmt: skip
    envelope = run.json()
    assert envelope["state"] == "scheduled" and envelope["priority"] == "high"
    assert envelope["payload"] == {"seconds": 0.1} and envelope["max_retries"] == 5
    assert envelope["timeout"] == 60 and envelope["metadata"] == {"from": "cli"}
    assert envelope["scheduled_at"].startswith("2099-01-01T00:00:00")
    stack.cli("cancel", envelope["id"])


def test_payload_from_stdin_and_an_idempotency_key(stack: Stack):
    first = stack.cli(
        "submit",
        "echo",
        "--payload",
        "@-",
        "--idempotency-key",
        "cli-k1",
        stdin='{"from": "stdin"}',
    ).out.strip()
    again = stack.cli(
        "submit", "echo", "--payload", '{"from": "stdin"}', "--idempotency-key", "cli-k1"
    )
    assert again.out.strip() == first
    assert "idempotency key" in again.err
    assert stack.wait_state(first, "completed")["result"] == {"from": "stdin"}
    other = stack.cli("submit", "echo", "--idempotency-key", "cli-k1", expect=3)
    assert "(HTTP 422)" in other.err and "payload" in other.err


def test_wait_shows_progress_with_messages_then_the_result(stack: Stack):
    run = stack.cli("submit", "sleep", "--payload", '{"seconds": 1.2, "steps": 3}', "--wait")
    task_id, *progress, result = run.lines
    assert json.loads(result)["slept"] >= 1.2
    assert all(line.startswith(f"{task_id}  sleep  ") for line in progress)
    assert "running  66%" in "\n".join(progress) and "step 2 of 3" in "\n".join(progress)
    assert progress[-1].split()[2:4] == ["completed", "100%"]
    assert progress[-1].split()[4].endswith("s")  # the elapsed time


def test_wait_json_prints_the_final_envelope(stack: Stack):
    envelope = stack.cli("submit", "echo", "--payload", '{"x": [1, 2]}', "--wait", "--json")
    body = envelope.json()
    assert body["state"] == "completed" and body["result"] == {"x": [1, 2]}
    assert body == stack.api("GET", f"/api/v1/tasks/{body['id']}").json()


@pytest.mark.parametrize("max_retries", [0, 1])
def test_wait_on_a_task_that_ends_in_the_dlq_exits_1(stack: Stack, max_retries: int):
    run = stack.cli(
        "submit",
        "fail",
        "--payload",
        '{"message": "boom"}',
        "--max-retries",
        str(max_retries),
        "--wait",
        expect=1,
    )
    task_id = run.lines[0]
    assert f"{task_id} dead_letter: boom" in run.err
    states = [line.split()[2] for line in run.lines[1:]]
    assert states[-1] == "dead_letter" and ("retrying" in states) == (max_retries == 1)
    # A failed execution is one line, in the state it led to: never "running" with the error.
    assert not [line for line in run.lines[1:] if line.split()[2] == "running" and "boom" in line]
    envelope = stack.cli("get", task_id, "--json").json()
    assert envelope["attempts"] == max_retries + 1


def test_wait_on_a_task_failed_by_its_processor_exits_1(stack: Stack):
    task_id = stack.cli("submit", "echo", "--scheduled-at", "2099-01-01T00:00:00Z").out.strip()
    waiting = stack.cli.start("watch", task_id)
    waiting.wait_output(lambda lines: any("scheduled" in line for line in lines))
    patched = stack.api(
        "PATCH", f"/api/v1/tasks/{task_id}", json={"status": "failed", "error_message": "disk full"}
    )
    assert patched.status_code == 200
    run = waiting.finish()
    assert run.code == 1
    assert run.out.splitlines()[-1].split()[2] == "failed" and "disk full" in run.out


def test_wait_on_a_task_cancelled_meanwhile_exits_1(stack: Stack):
    waiting = stack.cli.start("submit", "echo", "--scheduled-at", "2099-01-01T00:00:00Z", "--wait")
    task_id = waiting.wait_output(lambda lines: lines and lines[0])
    assert stack.cli("cancel", task_id).out.strip() == f"cancelled {task_id} (state cancelled)"
    run = waiting.finish()
    assert run.code == 1 and f"{task_id} cancelled" in run.err


def test_cancel_retry_purge_and_their_conflicts(stack: Stack):
    task_id = stack.cli("submit", "echo", "--scheduled-at", "2099-01-01T00:00:00Z").out.strip()
    assert stack.cli("cancel", task_id, "--json").json()["state"] == "cancelled"
    refused = stack.cli("cancel", task_id, expect=3)
    assert refused.err.strip() == "Error: task cannot be cancelled in current state (HTTP 409)"
    assert refused.out == ""
    assert stack.cli("purge", task_id, "--json").json() == {
        "message": "Task deleted successfully",
        "task_id": task_id,
    }
    gone = stack.cli("get", task_id, expect=3)
    assert "task not found (HTTP 404)" in gone.err

    failed = stack.cli("submit", "fail", "--max-retries", "0", "--wait", expect=1).lines[0]
    assert stack.cli("retry", failed).out.strip() == f"queued again {failed} (state pending)"
    assert stack.cli("watch", failed, expect=1).lines[-1].split()[2] == "dead_letter"
    assert "Error:" in stack.cli("purge", "no-such-task", expect=3).err


def test_upload_streams_the_file_then_wait_shows_processing(stack: Stack, tmp_path):
    data = b"".join(b"line %d\n" % i for i in range(50_000))
    source = tmp_path / "report.csv"
    source.write_bytes(data)
    run = stack.cli("upload", str(source), "--priority", "critical", "--wait")
    task_id, result = run.lines[0], json.loads(run.lines[-1])
    assert task_id.startswith("task-")
    assert result["lines"] == 50_000 and result["sha256"] == hashlib.sha256(data).hexdigest()
    envelope = stack.cli("get", task_id, "--json").json()
    assert envelope["file_name"] == "report.csv" and envelope["file_size"] == len(data)
    assert envelope["priority"] == "critical" and envelope["type"] == "file.process"
    created = stack.cli("upload", str(source), "--type", "echo", "--json").json()
    assert created["type"] == "echo" and created["file_size"] == len(data)
    stack.cli("upload", str(tmp_path / "missing"), expect=2)


def test_ls_filters_pages_and_prints_plain_columns(stack: Stack):
    ids = [stack.cli("submit", "echo", "--wait", "--json").json()["id"] for _ in range(3)]
    listing = stack.cli("ls", "--type", "echo", "--page-size", "2", "--json").json()
    assert listing["page_size"] == 2 and listing["pages"] >= 2 and len(listing["tasks"]) == 2
    assert set(listing) >= {"queue_depths", "total_pending", "tasks", "total", "page"}
    assert listing["tasks"][0]["id"] == ids[-1]  # newest first
    second = stack.cli("ls", "--type", "echo", "--page-size", "2", "--page", "2", "--json")
    assert second.json()["page"] == 2
    table = stack.cli("ls", "--state", "completed")
    header, *rows = table.lines
    assert header.split() == ["ID", "TYPE", "STATE", "PRIORITY", "PROGRESS", "ATTEMPTS", "AGE"]
    assert {row.split()[0] for row in rows} >= set(ids)
    assert all(row.split()[2] == "completed" for row in rows)
    assert "page 1 of" in table.err
    bad = stack.cli("ls", "--state", "sleeping", expect=3)
    assert "state" in bad.err and "(HTTP 400)" in bad.err


PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "critical": 3}


def _submitted(stack: Stack, task_type: str, priority: str) -> str:
    run = stack.cli("submit", task_type, "--priority", priority, "--wait", "--json")
    return run.json()["id"]


def test_ls_combines_filters_like_the_api(stack: Stack):
    wanted = [_submitted(stack, "echo", "critical") for _ in range(2)]
    other_priority = _submitted(stack, "echo", "low")
    other_type = _submitted(stack, "sleep", "critical")
    failing = stack.cli("submit", "fail", "--priority", "critical", "--max-retries", "0").out
    stack.wait_state(failing.strip(), "dead_letter")
    filters = ["--type", "echo", "--status", "completed", "--priority", "critical"]
    listing = stack.cli("ls", *filters, "--page-size", "100", "--json").json()
    query = "type=echo&status=completed&priority=critical&page_size=100"
    api = stack.api("GET", f"/api/v1/tasks?{query}").json()
    assert (listing["tasks"], listing["total"]) == (api["tasks"], api["total"])
    ids = [t["id"] for t in listing["tasks"]]
    assert set(wanted) <= set(ids) and other_priority not in ids and other_type not in ids
    assert all(
        (t["type"], t["status"], t["priority"]) == ("echo", "completed", "critical")
        for t in listing["tasks"]
    )
    rows = stack.cli("ls", *filters, "--state", "completed", "--page-size", "100").lines[1:]
    assert {row.split()[0] for row in rows} == set(ids)
    none = stack.cli("ls", "--status", "failed", "--state", "completed", "--json").json()
    assert none["total"] == 0  # a state outside the status matches nothing
    assert "--status" in stack.cli("ls", "--help").out
    assert "one filter at a time" not in stack.cli("ls", "--help").out


def test_ls_sorts_by_priority_and_by_update_in_either_order(stack: Stack):
    ids = {p: _submitted(stack, "echo", p) for p in ("high", "low", "critical", "normal")}
    filters = ["--type", "echo", "--status", "completed", "--page-size", "100"]
    ascending = stack.cli("ls", *filters, "--sort-by", "priority", "--order", "asc", "--json")
    ranks = [PRIORITY_RANK[t["priority"]] for t in ascending.json()["tasks"]]
    assert ranks == sorted(ranks) and ranks[0] < ranks[-1]
    query = "type=echo&status=completed&page_size=100&sort_by=priority&order=asc"
    assert ascending.json()["tasks"] == stack.api("GET", f"/api/v1/tasks?{query}").json()["tasks"]
    table = stack.cli("ls", *filters, "--sort-by", "priority", "--order", "desc")
    shown = [PRIORITY_RANK[row.split()[3]] for row in table.lines[1:]]
    assert shown == sorted(shown, reverse=True)
    by_update = stack.cli("ls", *filters, "--sort-by", "updated_at", "--order", "asc", "--json")
    listed = [t["id"] for t in by_update.json()["tasks"]]
    order = [listed.index(ids[p]) for p in ("high", "low", "critical", "normal")]
    assert order == sorted(order)  # completed one after another, listed oldest update first
    bad = stack.cli("ls", "--sort-by", "age", expect=2)
    assert "--sort-by" in bad.err


def test_stats_matches_the_api(stack: Stack):
    stats = stack.cli("stats", "--json").json()
    assert stats == stack.api("GET", "/api/v1/tasks/statistics").json()
    shown = stack.cli("stats").lines
    assert shown[0].split() == ["FIELD", "VALUE"]
    rows = {line.rsplit(None, 1)[0].strip(): line.split()[-1] for line in shown[1:]}
    assert rows["total"] == str(stats["total"])
    assert rows["state dead_letter"] == str(stats["by_state"]["dead_letter"])
    assert rows["success_rate"] == f"{100 * stats['success_rate']:.1f}%"


def test_usage_errors_exit_2(stack: Stack):
    runs = stack.cli.many(
        ["submit"], ["submit", "echo", "--priority", "urgent"],
        ["submit", "echo", "--payload", "{not json"], ["submit", "echo", "--timeout", "soon"],
        ["submit", "echo", "--payload", "@/no/such/file"], ["frobnicate"], ["get"],
        ["--url", "localhost:8080", "ls"], ["ls", "--page", "two"], ["dlq", "retry"],
    )  # fmt: skip
    for run in runs:
        assert run.code == 2, run
        assert "Usage: taskqueue" in run.err and "Error:" in run.err and run.out == ""


def test_api_errors_exit_3_with_the_api_message(stack: Stack):
    run = stack.cli("submit", "no-such-handler", expect=3)
    assert run.err.strip() == "Error: type: unknown task type 'no-such-handler' (HTTP 400)"
    run = stack.cli("submit", "echo", "--max-retries", "1000", expect=3)
    assert "max_retries" in run.err


def test_an_unreachable_service_exits_4_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    commands = (["ls"], ["submit", "echo", "--wait"], ["watch"], ["workers", "--json"])
    for run in Cli(url).many(*commands):
        assert run.code == 4, run
        assert run.err.startswith(f"Error: cannot reach the service at {url}")
        assert run.out == ""
