"""One clock: hosts whose clocks are off by an hour change nothing (Redis ``TIME`` decides).

The skew is real: the worker (or web) process runs under libfaketime (``LD_PRELOAD``), so
``time.time()`` and ``datetime.now()`` in it are an hour off, as on a misconfigured host.
Monotonic clocks stay real (Celery's timers run on them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.harness import ROOT, service_env, wait_for
from tests.service import require_functions

HOUR_AHEAD = "+1h"


def _faketime_env(offset: str) -> dict[str, str]:
    """Environment that runs a process with its wall clock shifted by ``offset``."""
    try:
        import libfaketime
    except ImportError:
        pytest.skip(
            "libfaketime is not installed: `pip install -e '.[test]'` (needs a C "
            "compiler) provides the LD_PRELOAD library these tests skew clocks with"
        )
    _, preload = libfaketime.get_reload_information()
    return {**preload, "FAKETIME": offset, "DONT_FAKE_MONOTONIC": "1"}


def _redis_now(env) -> datetime:
    seconds, micros = env.redis.time()
    return datetime.fromtimestamp(seconds + micros / 1e6, UTC)


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def test_skewed_process_really_runs_an_hour_ahead():
    env = {**service_env("redis://unused"), **_faketime_env(HOUR_AHEAD)}
    out = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert 3590 < float(out.stdout) - datetime.now(UTC).timestamp() < 3610


def test_worker_an_hour_ahead_neither_releases_early_nor_purges_recent_tasks(env):
    worker = env.worker(
        "ahead",
        task_retention_seconds=1800,
        retry_backoff_seconds=60,
        **{k.lower(): v for k, v in _faketime_env(HOUR_AHEAD).items()},
    )
    later = env.submit(
        type="echo", payload={}, scheduled_at=(_redis_now(env) + timedelta(minutes=2)).isoformat()
    )
    finished = env.submit(type="echo", payload={"n": 1})
    failing = env.submit(type="fail", payload={}, max_retries=1)
    env.wait_state(finished["id"], "completed")
    retrying = env.wait_state(failing["id"], "retrying")

    # Controls that prove the skewed worker holds the maintenance lock and runs its timers: a
    # task due in a second is released, and one that ended two hours ago is purged.
    soon = env.submit(
        type="echo", payload={}, scheduled_at=(_redis_now(env) + timedelta(seconds=1)).isoformat()
    )
    old = env.submit(type="echo", payload={"n": 2})
    env.wait_state(old["id"], "completed")
    # retention reads when a final task ended from its updated index: rank(completed) × 2^42 + ms
    ended = _ms(env.get(old["id"])["completed_at"]) - 7.2e6
    env.redis.zadd("tq:idx:updated:type:echo", {old["id"]: 4 * 2**42 + ended})
    env.wait_state(soon["id"], "completed", timeout=20)
    wait_for(
        lambda: env.client.get(f"/api/v1/tasks/{old['id']}").status_code == 404,
        timeout=20,
        message="the two-hour-old task to be purged",
    )

    assert env.get(later["id"])["state"] == "scheduled"
    assert env.get(finished["id"])["state"] == "completed"
    assert env.get(failing["id"])["state"] == "retrying"
    # Stamps written while the skewed worker ran are on Redis's clock, not an hour ahead.
    now = _redis_now(env).timestamp() * 1000
    completed = env.get(finished["id"])
    assert now - 60_000 < _ms(completed["started_at"]) <= _ms(completed["completed_at"]) <= now
    next_retry = _ms(retrying["next_retry_at"]) - _ms(retrying["updated_at"])
    assert 54_000 <= next_retry <= 66_000  # the 60 s backoff ±10 %, not 1 h + 60 s
    record = next(
        w
        for w in env.client.get("/admin/workers").get_json()["workers"]
        if w["id"] == worker.hostname
    )
    assert now - 60_000 < _ms(record["last_heartbeat"]) <= now


def test_web_process_an_hour_ahead_still_schedules_a_task_due_in_two_minutes(env):
    script = (
        "import json, sys\n"
        "from datetime import UTC, datetime, timedelta\n"
        "from app import create_app\n"
        "from celery_app.settings import Settings\n"
        "client = create_app(Settings.from_env()).test_client()\n"
        "answer = client.post('/api/v1/tasks', json={'type': 'echo', 'payload': {},\n"
        "                     'scheduled_at': sys.argv[1]})\n"
        "print(json.dumps(answer.get_json()))\n"
    )
    due = _redis_now(env) + timedelta(minutes=2)
    process_env = {**service_env(env.url), **_faketime_env(HOUR_AHEAD)}
    out = subprocess.run(
        [sys.executable, "-c", script, due.isoformat()],
        env=process_env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    envelope = json.loads(out.stdout.strip().splitlines()[-1])
    assert envelope["state"] == "scheduled"
    assert _ms(envelope["scheduled_at"]) == int(due.timestamp() * 1000)
    now = _redis_now(env).timestamp() * 1000
    assert now - 60_000 < _ms(envelope["created_at"]) <= now
    assert env.redis.zscore("tq:delayed", envelope["id"]) == int(due.timestamp() * 1000)


@pytest.mark.parametrize(
    "milliseconds",
    [
        0,
        951_782_400_000,
        951_868_799_999,
        1_709_251_199_999,
        1_764_460_800_123,
        4_107_542_399_999,
        4_107_542_400_000,
        253_402_300_799_999,
    ],
)
def test_scripts_format_time_exactly_like_the_python_side(env, milliseconds):
    from importlib import resources

    from celery_app import model

    lib = resources.files("celery_app").joinpath("lua/lib.lua").read_text()
    formatted = env.redis.eval(
        lib + "\nreturn iso(tonumber(ARGV[5]))", 0, "tq:", "", "", 100, milliseconds
    )
    assert formatted == model.iso_ms(milliseconds)


def test_the_function_library_formats_time_exactly_like_the_python_side_across_days(env):
    """In the function library ``iso`` keeps the last second's text and the last day's date
    between calls: a sequence of instants within one second (milliseconds of one, two and three
    digits) and across seconds and days, forwards and back, formats as the Python side does."""
    from importlib import resources

    from celery_app import model

    require_functions(env.redis)
    lib = resources.files("celery_app").joinpath("lua/lib.lua").read_text()
    env.redis.function_load(
        "#!lua name=tq_test_iso\n" + lib
        + "\nredis.register_function('tq_test_iso', function(KEYS, ARGV)"
        + " return iso(tonumber(ARGV[1])) end)\n",
        replace=True,
    )
    try:
        day = 86_400_000
        moments = [1_764_460_800_123, 1_764_460_800_124, 1_764_460_800_045, 1_764_460_800_007,
                   1_764_460_799_999, 1_764_460_800_000, 1_764_460_800_123 + day - 125,
                   1_764_460_800_123 + day, 1_764_460_800_123 - 1, 951_868_799_999,
                   951_868_799_999 + 1, 0, 253_402_300_799_999, 1_764_460_800_124]
        for moment in moments:
            assert env.redis.fcall("tq_test_iso", 0, moment) == model.iso_ms(moment), moment
    finally:
        env.redis.function_delete("tq_test_iso")
