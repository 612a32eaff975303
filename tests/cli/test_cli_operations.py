"""``taskqueue`` operator commands: workers, queues, pause/resume, the DLQ."""

from __future__ import annotations

import os

from tests.harness import wait_for

from .conftest import Stack, on_a_terminal


def test_workers_and_queues_match_the_api(stack: Stack):
    workers = stack.cli("workers", "--json").json()
    assert workers["count"] == 1
    assert [w["id"] for w in workers["workers"]] == [stack.worker.hostname]
    header, row = stack.cli("workers").lines
    assert header.split()[:3] == ["WORKER", "STATE", "ACTIVE"]
    assert row.split()[0] == stack.worker.hostname and row.split()[1] in {"idle", "busy"}
    assert "critical,high,normal,low" in row

    queues = stack.cli("queues", "--json").json()
    assert set(queues["queues"]) == {"critical", "high", "normal", "low"}
    assert queues["queues"]["critical"]["priority"] == 3
    table = stack.cli("queues")
    assert [line.split()[:2] for line in table.lines[1:]] == [
        ["critical", "3"], ["high", "2"], ["normal", "1"], ["low", "0"]]  # fmt: skip
    assert "waiting in all" in table.err


def test_pause_and_resume_a_worker(stack: Stack):
    name = stack.worker.hostname

    def state() -> str:
        workers = stack.cli("workers", "--json").json()["workers"]
        return {w["id"]: w["state"] for w in workers}[name]

    try:
        paused = stack.cli("pause", name)
        assert paused.out.strip() in {
            f"worker {name}: paused",
            f"worker {name}: pausing — not confirmed yet",
        }
        wait_for(lambda: state() == "paused", message="the worker paused")
    finally:
        resumed = stack.cli("resume", name)
    assert resumed.out.startswith(f"worker {name}: ")
    wait_for(lambda: state() in {"idle", "busy"}, message="the worker resumed")
    assert stack.cli("resume", name, "--json").json()["id"] == name
    missing = stack.cli("pause", "nobody@nowhere", expect=3)
    assert "(HTTP 404)" in missing.err


def test_pause_and_resume_a_queue(stack: Stack):
    try:
        paused = stack.cli("queue", "pause", "low", "--json").json()
        assert paused == {"name": "low", "paused": True, "depth": 0}
        waiting = stack.cli("submit", "echo", "--priority", "low").out.strip()
        stack.cli("submit", "echo", "--priority", "high", "--wait")  # other queues flow
        assert stack.cli("get", waiting, "--json").json()["state"] == "pending"
        rows = {line.split()[0]: line.split() for line in stack.cli("queues").lines[1:]}
        assert rows["low"] == ["low", "0", "1", "yes"] and rows["high"][3] == "no"
    finally:
        resumed = stack.cli("queue", "resume", "low")
    assert resumed.out.strip() in {
        "queue low: running (1 waiting)",
        "queue low: running (0 waiting)",
    }
    assert stack.cli("watch", waiting).lines[-1].split()[2] == "completed"
    assert "(HTTP 404)" in stack.cli("queue", "pause", "urgent", expect=3).err


def test_dlq_list_retry_retry_all_and_clear(stack: Stack):
    stack.cli("dlq", "clear")
    dead = [
        stack.cli(
            "submit",
            "fail",
            "--max-retries",
            "0",
            "--payload",
            f'{{"message": "m{i}"}}',
            "--wait",
            expect=1,
        ).lines[0]
        for i in range(2)
    ]
    listing = stack.cli("dlq", "ls", "--json").json()
    assert [e["task"]["id"] for e in listing["entries"]] == dead and listing["size"] == 2
    header, *rows = stack.cli("dlq", "ls").lines
    assert header.split()[:3] == ["TASK", "ID", "TYPE"]
    assert [row.split()[0] for row in rows] == dead and "m1" in rows[1]
    page = stack.cli(
        "dlq", "ls", "--count", "1", "--after", listing["entries"][0]["message_id"], "--json"
    ).json()
    assert [e["task"]["id"] for e in page["entries"]] == dead[1:]

    assert stack.cli("dlq", "retry", dead[0]).out.strip() == f"queued again {dead[0]}"
    stack.cli("watch", dead[0], expect=1)  # fails again, back in the DLQ
    assert stack.cli("dlq", "retry-all", "--json").json() == {
        "message": "tasks re-queued",
        "retried_count": 2,
    }
    stack.cli("watch", *dead, expect=1)
    assert "(HTTP 404)" in stack.cli("dlq", "retry", "not-in-the-dlq", expect=3).err
    assert stack.cli("dlq", "clear").out.strip() == "cleared 2 entries"
    assert stack.cli("dlq", "ls", "--json").json()["size"] == 0


def test_dlq_clear_asks_on_a_terminal_and_keeps_the_entries_when_refused(stack: Stack):
    stack.cli("submit", "fail", "--max-retries", "0", "--wait", expect=1)
    size = stack.cli("dlq", "ls", "--json").json()["size"]
    process, output, master = on_a_terminal(stack.web.url, "dlq", "clear")
    wait_for(lambda: b"[y/N]" in output, message="the question")
    os.write(master, b"n\n")
    assert process.wait(20) == 1
    wait_for(lambda: b"nothing cleared" in output, message="the answer")
    os.close(master)
    assert stack.cli("dlq", "ls", "--json").json()["size"] == size > 0
    assert stack.cli("dlq", "clear", "--yes").out.strip() == f"cleared {size} entries"
