"""``taskqueue watch``: live progress from ``/ws``, every running task when no id is given,
resuming after a dropped connection without a gap, and Ctrl-C on a pipe and on a terminal."""

from __future__ import annotations

import json
import os
import signal

from tests.harness import WebServer, wait_for

from .conftest import Cli, Stack, on_a_terminal


def _states(lines: list[str], task_id: str) -> list[str]:
    return [line.split()[2] for line in lines if line.startswith(task_id + "  ")]


#: Where each state may come in a task's progression (a retry would go back to ``pending``;
#: these tasks have no retry).
STATE_RANK = {"pending": 0, "running": 1, "completed": 2, "failed": 2, "dead_letter": 2}


def _progression(lines: list[str], task_id: str) -> list[tuple[str, int]]:
    """``(state, percent)`` of each plain line printed for ``task_id``, in order."""
    fields = [line.split() for line in lines if line.startswith(task_id + "  ")]
    return [(f[2], int(f[3].rstrip("%"))) for f in fields]


def _assert_never_backwards(steps: list[tuple[str, int]]) -> None:
    ranks = [STATE_RANK[state] for state, _ in steps]
    percents = [percent for _, percent in steps]
    assert ranks == sorted(ranks), steps
    assert percents == sorted(percents), steps
    assert steps[-1][0] == "completed", steps


def _running_past_first_step(stack: Stack, task_id: str) -> dict:
    """Wait until the task runs with its first step reported: its started and first progress
    events are then in the replay window of any read that follows."""

    def past() -> dict | None:
        envelope = stack.api("GET", f"/api/v1/tasks/{task_id}").json()
        return envelope if envelope["state"] == "running" and envelope["progress"] > 0 else None

    return wait_for(past, timeout=20, message=f"{task_id} past its first step")


def test_following_a_running_task_never_shows_it_going_backwards(stack: Stack):
    payload = '{"seconds": 3, "steps": 3}'
    task_id = stack.cli("submit", "sleep", "--payload", payload).out.strip()
    read = _running_past_first_step(stack, task_id)
    run = stack.cli("watch", task_id)
    steps = _progression(run.lines, task_id)
    assert steps[0][0] == "running" and steps[0][1] >= read["progress"], steps
    _assert_never_backwards(steps)

    # --wait follows the same way, from the envelope the POST answered: an idempotency key
    # reused while the first task runs answers that running task.
    key = f"running-{task_id}"
    first = stack.cli("submit", "sleep", "--payload", payload, "--idempotency-key", key)
    first_id = first.out.strip()
    read = _running_past_first_step(stack, first_id)
    again = stack.cli("submit", "sleep", "--payload", payload, "--idempotency-key", key, "--wait")
    assert again.lines[0] == first_id and "idempotency key" in again.err
    steps = _progression(again.lines, first_id)
    assert steps[0][0] == "running" and steps[0][1] >= read["progress"], steps
    _assert_never_backwards(steps)
    assert again.lines[-1].startswith("{")  # the result, after the last progress line


def test_watch_ids_exits_0_when_all_completed_and_1_when_one_did_not(stack: Stack):
    slow = stack.cli("submit", "sleep", "--payload", '{"seconds": 0.5, "steps": 2}').out.strip()
    quick = stack.cli("submit", "echo").out.strip()
    run = stack.cli("watch", slow, quick, quick)
    assert _states(run.lines, slow)[-1] == "completed"
    assert _states(run.lines, quick)[-1] == "completed"
    failing = stack.cli("submit", "fail", "--max-retries", "0").out.strip()
    run = stack.cli("watch", quick, failing, expect=1)
    assert _states(run.lines, failing)[-1] == "dead_letter"
    assert "failed on purpose" in run.out
    assert "task not found" in stack.cli("watch", "no-such-task", expect=3).err


def test_watch_json_prints_the_event_frames_of_the_task(stack: Stack):
    task_id = stack.cli("submit", "sleep", "--payload", '{"seconds": 2, "steps": 4}').out
    task_id = task_id.strip()
    run = stack.cli("watch", task_id, "--json")  # from before it started: events replayed
    frames = [json.loads(line) for line in run.lines]
    assert {frame["data"]["task_id"] for frame in frames} == {task_id}
    assert frames[-1]["type"] == "task.completed"
    assert set(frames[0]) == {"id", "type", "timestamp", "data"}
    stored = stack.events_of(task_id)
    assert [frame["id"] for frame in frames] == stored[stored.index(frames[0]["id"]) :]


def test_watch_without_ids_shows_running_tasks_and_adds_new_ones_until_ctrl_c(stack: Stack):
    early = stack.cli("submit", "sleep", "--payload", '{"seconds": 1.5, "steps": 3}').out.strip()
    stack.wait_state(early, "running")
    watching = stack.cli.start("watch")
    watching.wait_output(lambda lines: _states(lines, early))
    late = [
        stack.cli("submit", *args).out.strip()
        for args in (["echo"], ["fail", "--max-retries", "0"])
    ]
    stack.cli("submit", "echo", "--scheduled-at", "2099-01-01T00:00:00Z")  # never starts
    watching.wait_output(
        lambda lines: all(
            _states(lines, t)[-1:] in (["completed"], ["dead_letter"]) for t in [early, *late]
        )
    )
    watching.interrupt()
    run = watching.finish()
    assert run.code == 130
    assert (
        _states(run.lines, early)[0] == "running" and _states(run.lines, early)[-1] == "completed"
    )
    assert _states(run.lines, late[0])[-1] == "completed"
    assert "scheduled" not in run.out and "pending" not in _states(run.lines, late[0])


def test_watch_resumes_after_the_connection_drops_without_missing_an_event(stack: Stack):
    web = WebServer(stack.redis_url, workers=1, threads=8, upload_dir=stack.uploads).start()
    try:
        cli = Cli(web.url)
        payload = '{"seconds": 6, "steps": 30}'  # long enough to outlive the restart
        task_id = cli("submit", "sleep", "--payload", payload).out.strip()
        watching = cli.start("watch", task_id, "--json")
        watching.wait_output(lambda lines: any('"task.progress"' in line for line in lines))
        web.stop()
        missed_from = len(stack.events_of(task_id))
        wait_for(
            lambda: len(stack.events_of(task_id)) >= missed_from + 3,
            timeout=10,
            message="events appended while no web process runs",
        )
        web.start()  # the same port: the client's reconnection finds it
        run = watching.finish()
    finally:
        web.stop()
    assert run.code == 0
    printed = [json.loads(line)["id"] for line in run.lines]
    stored = stack.events_of(task_id)
    assert printed == stored[stored.index(printed[0]) :]  # no gap, no repeat
    assert "resuming after event" in run.err


def test_a_terminal_gets_tables_and_bars_and_ctrl_c_restores_it(stack: Stack):
    process, output, master = on_a_terminal(stack.web.url, "queues")
    assert process.wait(30) == 0
    wait_for(lambda: b"low" in output, message="the table")
    assert b"QUEUE" in output and b"\xe2\x94\x80" in output  # box drawing: a Rich table
    os.close(master)

    process, output, master = on_a_terminal(stack.web.url, "watch")
    wait_for(lambda: b"\x1b[?25l" in output, message="the live display")  # cursor hidden
    stack.cli("submit", "sleep", "--payload", '{"seconds": 0.5, "steps": 5}')
    wait_for(lambda: b"completed" in output, timeout=20, message="a finished bar")
    assert b"sleep" in output and b"%" in output
    os.kill(process.pid, signal.SIGINT)
    assert process.wait(10) == 130
    wait_for(
        lambda: output.rfind(b"\x1b[?25h") > output.rfind(b"\x1b[?25l"),
        timeout=5,
        message="the cursor shown again",
    )
    os.close(master)


def test_watch_without_ids_passes_over_tasks_that_ended_before_it_started(stack: Stack):
    # Their events are in the seconds the stream is replayed from (before the listing), and
    # must not make them look running again; what starts afterwards is shown.
    ended = [stack.cli("submit", "echo").out.strip() for _ in range(3)]
    for task_id in ended:
        stack.wait_state(task_id, "completed")
    watching = stack.cli.start("watch")
    late = stack.cli("submit", "sleep", "--payload", '{"seconds": 0.3}').out.strip()
    watching.wait_output(lambda lines: _states(lines, late)[-1:] == ["completed"])
    watching.interrupt()
    run = watching.finish()
    assert run.code == 130
    assert not [line for line in run.lines if line.split()[:1] and line.split()[0] in ended]
    assert "running" in _states(run.lines, late)
