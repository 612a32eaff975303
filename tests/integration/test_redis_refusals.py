"""Redis answering but refusing writes (OOM, READONLY, MISCONF, BUSY, NOSCRIPT): a 503 that
names the refusal, health that says so, nothing half written, and no accepted task lost.

Each test runs its own redis-server: ``maxmemory``, ``REPLICAOF`` and a failing save are
server-wide and must not touch the shared one.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator

import pytest
import redis

from tests.harness import RedisServer, wait_for
from tests.service import Env, function_libraries, private_env, require_functions


@pytest.fixture
def own(tmp_path) -> Iterator[Env]:
    with private_env(tmp_path) as environment:
        yield environment


def _out_of_memory(env: Env) -> None:
    """``maxmemory`` far under what Redis uses (the default policy is noeviction): one byte,
    so that no swing in its use (client buffers, expiring keys) lets a write through."""
    assert env.redis.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    env.redis.config_set("maxmemory", 1)


def _memory_back(env: Env) -> None:
    env.redis.config_set("maxmemory", 0)


def _snapshot(env: Env) -> dict:
    """Everything a submit could have written."""
    return {
        key: env.redis.type(key) for key in env.redis.scan_iter(count=1000) if key != "tq:health"
    }


def _assert_refused(env: Env, condition: str, *, check_nothing_written: bool = True) -> None:
    before = _snapshot(env) if check_nothing_written else None
    response = env.client.post("/api/v1/tasks", json={"type": "echo", "payload": {}})
    assert response.status_code == 503, response.get_json()
    assert response.get_json() == {
        "error": "Service Unavailable",
        "message": f"redis unavailable: {condition}",
    }
    health = env.client.get("/admin/health")
    assert health.status_code == 503
    assert health.get_json()["status"] == "unhealthy"
    assert health.get_json()["redis"] == condition and health.get_json()["error"]
    if check_nothing_written:
        assert _snapshot(env) == before  # the refused submit left nothing behind


def _assert_accepted(env: Env) -> None:
    assert env.client.get("/admin/health").get_json()["status"] == "healthy"
    assert env.client.post("/api/v1/tasks", json={"type": "echo"}).status_code == 201


def test_out_of_memory_is_a_503_naming_it_and_nothing_is_written(own):
    own.submit(type="echo", payload={"before": True})
    _out_of_memory(own)
    _assert_refused(own, "out of memory")
    reads = own.client.get("/api/v1/tasks")
    assert reads.status_code == 200 and reads.get_json()["total"] == 1  # reads still work
    _memory_back(own)
    _assert_accepted(own)


def test_a_replica_is_a_503_read_only_replica(own):
    master = RedisServer().start()
    try:
        own.redis.replicaof("127.0.0.1", master.port)
        _assert_refused(own, "read-only replica")
        own.redis.replicaof("NO", "ONE")
        _assert_accepted(own)
    finally:
        master.stop()


def test_a_failing_save_is_a_503_cannot_persist(own):
    own.redis.config_set("save", "3600 1")
    os.rmdir(own.server.dir)  # the server's working directory: no snapshot can be written
    own.redis.bgsave()
    wait_for(
        lambda: own.redis.info("persistence")["rdb_last_bgsave_status"] == "err",
        message="the snapshot to fail",
    )
    _assert_refused(own, "cannot persist (MISCONF)")
    own.redis.config_set("save", "")  # no save points: writes no longer depend on saving
    _assert_accepted(own)


def test_a_busy_script_is_a_503_busy(own):
    own.redis.config_set("busy-reply-threshold", 100)
    before = _snapshot(own)
    spinner = redis.Redis(port=own.server.port)
    loop = threading.Thread(
        target=lambda: pytest.raises(
            redis.ResponseError, spinner.eval, "local i = 0 while true do i = i + 1 end", 0
        )
    )
    loop.start()
    try:

        def busy() -> bool:
            try:
                own.redis.ping()
            except redis.ResponseError as exc:
                return str(exc).startswith("BUSY")
            return False

        wait_for(busy, message="Redis to answer BUSY")
        _assert_refused(own, "busy running a script", check_nothing_written=False)
    finally:
        redis.Redis(port=own.server.port).script_kill()
        loop.join(10)
        spinner.close()
    assert _snapshot(own) == before
    _assert_accepted(own)


def test_a_flushed_script_cache_is_reloaded_by_web_and_worker(own):
    own.worker(worker_heartbeat_seconds=0.5)
    first = own.submit(type="echo", payload={"n": 1})
    own.wait_state(first["id"], "completed")
    own.redis.script_flush()
    second = own.submit(type="echo", payload={"n": 2})  # web: EVALSHA → NOSCRIPT → EVAL
    assert own.wait_state(second["id"], "completed")["result"] == {"n": 2}  # worker too


def test_flushed_functions_are_loaded_again_by_the_worker(own):
    """The worker's claim and outcome are functions (FCALL): after ``FUNCTION FLUSH`` (or a
    restart without persistence) the first call answers ``Function not found``, loads the
    library and runs."""
    require_functions(own.redis)
    own.worker(worker_heartbeat_seconds=0.5)
    first = own.submit(type="echo", payload={"n": 1})
    own.wait_state(first["id"], "completed")
    [library] = function_libraries(own.redis)
    assert library["library_name"].startswith("tq_")
    assert {f["name"] for f in library["functions"]} == {
        f"{library['library_name']}_{name}" for name in ("claim", "progress", "finish")
    }
    own.redis.function_flush()
    assert function_libraries(own.redis) == []
    second = own.submit(type="echo", payload={"n": 2})
    assert own.wait_state(second["id"], "completed")["result"] == {"n": 2}
    reloaded = function_libraries(own.redis)
    assert [lib["library_name"] for lib in reloaded] == [library["library_name"]]


def _worker_events(env: Env, kind: str) -> list[str]:
    return [f["data"] for _, f in env.redis.xrange("tq:events") if f["type"] == kind]


def _started(env: Env) -> list[str]:
    return [
        json.loads(f["data"])["task_id"]
        for _, f in env.redis.xrange("tq:events")
        if f["type"] == "task.started"
    ]


def test_a_message_lost_to_a_refused_write_still_runs_once_memory_is_back(own):
    """The failure report: 20 queued, Redis full, a consuming worker — kombu pops a message,
    its write to ``unacked`` is refused, the worker exits and the message exists nowhere."""
    first = own.worker("first", worker_heartbeat_seconds=0.5)
    assert own.client.post(f"/admin/workers/{first.hostname}/pause").status_code == 200
    wait_for(lambda: _worker_events(own, "worker.paused"), message="the pause to be applied")
    ids = [own.submit(type="echo", payload={"n": n})["id"] for n in range(20)]
    wait_for(lambda: own.redis.llen("low") == 20, message="20 messages queued")
    own.redis.rename("low", "held")  # out of the worker's reach while it resumes
    assert own.client.post(f"/admin/workers/{first.hostname}/resume").status_code == 200
    wait_for(lambda: _worker_events(own, "worker.resumed"), message="the worker to consume")

    _out_of_memory(own)
    refused = own.client.post("/api/v1/tasks", json={"type": "echo"})
    assert refused.status_code == 503
    assert refused.get_json()["message"] == "redis unavailable: out of memory"
    assert own.client.get("/admin/health").get_json()["redis"] == "out of memory"
    own.redis.rename("held", "low")  # needs no memory; the waiting BRPOP takes one message
    # Celery gives up ("Unrecoverable error"); its warm shutdown may then hang: kill it, as a
    # supervisor would.
    wait_for(
        lambda: "Unrecoverable error" in first.log_path.read_text(),
        timeout=20,
        message="the worker to meet the refused write",
    )
    first.kill()
    assert own.redis.llen("low") == 19 and own.redis.hlen("unacked") == 0  # one message gone
    assert all(own.get(i)["state"] == "pending" for i in ids)

    _memory_back(own)
    own.worker("second", worker_heartbeat_seconds=0.5, lost_message_grace_seconds=1)
    for task_id in ids:
        assert own.wait_state(task_id, "completed", timeout=30)["attempts"] == 1
    assert sorted(_started(own)) == sorted(ids)  # each ran exactly once
    recovered = [
        json.loads(f["data"])["task_id"]
        for _, f in own.redis.xrange("tq:events")
        if f["type"] == "task.submitted" and "recovered" in f["data"]
    ]
    assert len(recovered) == 1 and recovered[0] in ids


def test_out_of_memory_during_an_execution_loses_nothing_and_the_task_runs_again(own):
    first = own.worker("first", worker_heartbeat_seconds=0.5)
    task = own.submit(type="sleep", payload={"seconds": 1.5, "steps": 1}, max_retries=2)
    own.wait_state(task["id"], "running")
    _out_of_memory(own)
    # The handler's progress report is refused, so its execution fails; the outcome may or may
    # not be recorded (a script whose first write is a DEL, which needs no memory, may write
    # on), then kombu's acknowledgement (a MULTI of ZREM and HDEL) is refused: Celery gives up.
    wait_for(
        lambda: "Unrecoverable error" in first.log_path.read_text(),
        timeout=20,
        message="the worker to meet the refused acknowledgement",
    )
    first.kill()
    assert own.get(task["id"])["state"] in ("running", "retrying")  # not completed

    _memory_back(own)
    own.worker("second", worker_heartbeat_seconds=0.5)
    done = own.wait_state(task["id"], "completed", timeout=30)
    assert done["attempts"] == 2 and done["result"]["slept"] >= 1.5  # at-least-once
    assert _started(own).count(task["id"]) == 2
