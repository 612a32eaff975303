"""Claim cost of a limit: worker throughput for ``echo`` with a limit set vs without.

Run from the repository root::

    .venv/bin/python bench/limits.py [--tasks 1000] [--rounds 3]

Method
------
* Reuses ``bench/e2e.py``'s worker phase: one private ``redis-server``, flushed; ``--tasks``
  no-op ``echo`` tasks queued through the store (spread over the four priority queues); ``CONFIG
  RESETSTAT``; then one service worker ``-c 2 --pool prefork`` is started, and the time runs
  from its ``ready.`` log line to the last ``Task echo[…] succeeded`` line.
* ``limited``: before the worker starts, ``PUT /admin/limits/echo {"rate": "100000/s",
  "concurrency": 1000}`` (through the app's own route, Flask's test client) — a limit that
  never holds a task back, so what differs is only the cost of checking and recording it at
  claim (and releasing the concurrency slot at the end). ``none``: no limit.
* **Redis commands per task**: ``INFO commandstats`` after the last task, divided by
  ``--tasks`` (Lua's inner commands count; worker start-up and heartbeats are included).
* The targets alternate (none, limited, none, ...) for ``--rounds`` rounds; each one's median
  round by throughput is shown and the ratio is of medians.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.e2e import (  # noqa: E402
    Phase,
    WorkerRun,
    command_stats,
    queue_service_tasks,
    report,
)
from celery_app.settings import Settings  # noqa: E402
from tests.harness import RedisServer  # noqa: E402

#: A limit that never holds a task back at this benchmark's pace.
LIMIT = {"rate": "100000/s", "concurrency": 1000}
TARGETS = ("none", "limited")


def set_limit(redis_url: str) -> None:
    """``PUT /admin/limits/echo`` with :data:`LIMIT` through the app; raises unless 200."""
    from app import create_app

    client = create_app(Settings(redis_url=redis_url)).test_client()
    response = client.put("/admin/limits/echo", json=LIMIT)
    if response.status_code != 200:
        raise RuntimeError(f"PUT /admin/limits/echo: {response.status_code} {response.data!r}")


def limit_phase(target: str, server: RedisServer, tasks: int, log_dir: Path) -> Phase:
    """Queue ``tasks`` echo tasks, set the limit for ``limited``, run one worker until done."""
    client = redis.Redis.from_url(server.url())
    client.flushall()
    queue_service_tasks(server.url(), tasks)
    if target == "limited":
        set_limit(server.url())
    client.config_resetstat()
    worker = WorkerRun("service", server.url(), log_dir)
    try:
        worker.wait("ready", lambda: worker.ready_at is not None, timeout=60)
        worker.wait(f"{tasks} tasks", lambda: len(worker.done) >= tasks, timeout=600)
        commands = command_stats(client)
        assert worker.ready_at is not None
        return Phase(tasks, max(worker.done) - worker.ready_at, commands)
    finally:
        worker.stop()
        client.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; raises if a worker fails or does not finish."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args(argv)
    if min(args.tasks, args.rounds) <= 0:
        parser.error("--tasks and --rounds must be > 0")
    print(f"command: {shlex.join(sys.orig_argv)}")
    print(
        f"machine: nproc={os.cpu_count()}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    server = RedisServer().start()
    log_dir = Path(tempfile.mkdtemp(prefix="tq-limits-"))
    try:
        rounds: dict[str, list[Phase]] = {t: [] for t in TARGETS}
        for number in range(1, args.rounds + 1):
            for target in TARGETS:
                phase = limit_phase(target, server, args.tasks, log_dir)
                rounds[target].append(phase)
                print(
                    f"round {number} {target}: {phase.rate:.0f} tasks/s, "
                    f"{phase.per_task:.1f} commands/task",
                    flush=True,
                )
        medians = report(
            f"worker: {args.tasks} echo tasks queued, then one worker -c 2 started "
            f"(ready → last done), median of {args.rounds} rounds; limited = {LIMIT}:",
            rounds,
        )
        ratio = medians["limited"].rate / medians["none"].rate
        pairs = [a.rate / b.rate for a, b in zip(rounds["limited"], rounds["none"], strict=True)]
        extra = medians["limited"].per_task - medians["none"].per_task
        print(
            f"\nlimited / none throughput: {ratio:.2f}; per round "
            + ", ".join(f"{p:.2f}" for p in pairs)
        )
        print(f"extra Redis commands per task with a limit: {extra:+.1f}")
    finally:
        server.stop()
        for leftover in log_dir.glob("*"):
            leftover.unlink()
        log_dir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
