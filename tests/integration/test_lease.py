"""One execution at a time: the lease each execution holds, kept alive by the pool child that
runs it, decides when a task may run again — not the worker's main process."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.harness import wait_for

FAST = {"worker_heartbeat_seconds": 0.5}  # lease: 1.5 s, renewed every 0.5 s


def _started(env, task_id: str) -> list[tuple[int, str]]:
    """``(ms, worker)`` of each ``task.started`` of the task, from the event stream's ids."""
    return [
        (int(entry_id.split("-")[0]), json.loads(f["data"]).get("worker_id"))
        for entry_id, f in env.redis.xrange("tq:events")
        if f["type"] == "task.started" and json.loads(f["data"])["task_id"] == task_id
    ]


def _set_paused(env, worker, paused: bool) -> None:
    verb = "pause" if paused else "resume"
    assert env.client.post(f"/admin/workers/{worker.hostname}/{verb}").status_code == 200


def _pool_child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children  # -c 1
    return int(children[0])


def test_retry_after_patch_waits_for_the_running_execution_to_end(env):
    first = env.worker("a", concurrency=1, **FAST)
    env.worker("b", concurrency=1, **FAST)
    task = env.submit(type="sleep", payload={"seconds": 3, "steps": 3}, max_retries=0)["id"]
    running = env.wait_state(task, "running")
    holder, until = env.redis.hmget(f"tq:task:{task}", "lease", "lease_until")
    seconds, micros = env.redis.time()
    assert holder == env.redis.hget(f"tq:task:{task}", "delivery")
    assert int(until) > seconds * 1000 + micros // 1000  # held by this execution

    patched = env.client.patch(f"/api/v1/tasks/{task}", json={"status": "failed"})
    assert patched.status_code == 200 and patched.get_json()["state"] == "failed"
    refused = env.client.post(f"/api/v1/tasks/{task}/retry")
    assert refused.status_code == 409
    assert refused.get_json() == {
        "error": "Conflict",
        "message": "task is still being executed; retry once that execution ends",
    }

    retried = wait_for(
        lambda: env.client.post(f"/api/v1/tasks/{task}/retry").status_code == 200,
        timeout=15,
        interval=0.1,
        message="the first execution to end",
    )
    assert retried
    done = env.wait_state(task, "completed")
    assert done["attempts"] == 1
    (first_ms, first_worker), (second_ms, _) = _started(env, task)
    assert first_worker == running["worker_id"] == first.hostname
    assert second_ms - first_ms >= 3000  # the second began after the first's 3 s had passed


def test_a_stalled_main_process_with_a_live_child_keeps_the_task(env):
    stalled = env.worker("stalled", concurrency=1, **FAST)
    other = env.worker("other", concurrency=1, **FAST)
    _set_paused(env, other, True)  # so that the task starts on the worker about to stall
    task = env.submit(type="sleep", payload={"seconds": 10, "steps": 5}, max_retries=3)["id"]
    env.wait_state(task, "running")
    _set_paused(env, other, False)
    os.kill(stalled.process.pid, signal.SIGSTOP)
    try:
        # Its record expires after 1.5 s and the other worker takes over maintenance within
        # the lock's 5 s; the reaper then looks at the task every 0.5 s until the child ends.
        wait_for(
            lambda: (
                stalled.hostname
                not in {w["id"] for w in env.client.get("/admin/workers").get_json()["workers"]}
            ),
            message="the stalled worker to drop out of the registry",
        )
        done = env.wait_state(task, "completed", timeout=20)
    finally:
        os.kill(stalled.process.pid, signal.SIGCONT)
    assert done["attempts"] == 1 and done["worker_id"] == stalled.hostname
    assert [w for _, w in _started(env, task)] == [stalled.hostname]


def test_a_dead_child_loses_the_lease_and_the_task_runs_again(env):
    doomed = env.worker("doomed", concurrency=1, **FAST)
    survivor = env.worker("survivor", concurrency=1, **FAST)
    _set_paused(env, survivor, True)  # so that the task starts on the doomed worker
    task = env.submit(type="sleep", payload={"seconds": 4, "steps": 4}, max_retries=3)["id"]
    env.wait_state(task, "running")
    child = _pool_child(doomed.process.pid)
    os.kill(doomed.process.pid, signal.SIGSTOP)  # so only the lease can tell
    try:
        os.kill(child, signal.SIGKILL)  # long before its 4 s are up
        _set_paused(env, survivor, False)
        rerun = wait_for(
            lambda: len(_started(env, task)) == 2 and _started(env, task),
            timeout=30,  # lease 1.5 s + the stopped worker's maintenance lock (5 s) + reap
            message="the task to run again",
        )
    finally:
        os.kill(doomed.process.pid, signal.SIGCONT)
    assert rerun[1][1] == survivor.hostname
    envelope = env.get(task)
    assert envelope["attempts"] == 2
    assert "lease expired" in envelope["error"]


def test_a_lapsed_lease_is_taken_back_after_a_patch_so_retry_still_waits(env):
    env.worker("a", concurrency=1, **FAST)
    task = env.submit(type="sleep", payload={"seconds": 6, "steps": 6}, max_retries=0)["id"]
    env.wait_state(task, "running")
    assert env.client.patch(f"/api/v1/tasks/{task}", json={"status": "failed"}).status_code == 200
    # What a Redis outage longer than the lease leaves behind: the lease has lapsed.
    env.redis.hset(f"tq:task:{task}", "lease_until", "0")

    def now_ms() -> int:
        seconds, micros = env.redis.time()
        return seconds * 1000 + micros // 1000

    wait_for(
        lambda: int(env.redis.hget(f"tq:task:{task}", "lease_until")) > now_ms(),
        timeout=5,
        message="the running execution's renewer to take its lease back",
    )
    assert env.client.post(f"/api/v1/tasks/{task}/retry").status_code == 409
