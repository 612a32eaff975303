"""Claim cost of a limit: worker throughput for ``echo`` with a limit set vs without.

Run from the repository root::

    .venv/bin/python bench/limits.py [--tasks 1000] [--rounds 3]

Method
------
* Reuses ``bench/e2e.py``'s worker phase (``bench.common.measure_worker``): one private
  ``redis-server``, flushed; ``--tasks`` no-op ``echo`` tasks queued through the store (spread
  over the four priority queues); ``CONFIG RESETSTAT``; then one service worker ``-c 2 --pool
  prefork`` is started, and the time runs from its ``ready.`` log line to the last ``Task
  echo[…] succeeded`` line.
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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Phase,
    alternate,
    log_folder,
    measure_worker,
    print_header,
    print_ratio,
    report,
)
from bench.e2e import queue_service_tasks  # noqa: E402
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

    def prepare(redis_url: str) -> None:
        queue_service_tasks(redis_url, tasks)
        if target == "limited":
            set_limit(redis_url)

    return measure_worker("service", server, tasks, log_dir, prepare)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; raises if a worker fails or does not finish."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args(argv)
    if min(args.tasks, args.rounds) <= 0:
        parser.error("--tasks and --rounds must be > 0")
    print_header()
    server = RedisServer().start()
    try:
        with log_folder("tq-limits-") as log_dir:
            rounds = alternate(
                TARGETS, args.rounds,
                lambda target: limit_phase(target, server, args.tasks, log_dir),
            )
        medians = report(
            f"worker: {args.tasks} echo tasks queued, then one worker -c 2 started "
            f"(ready → last done), median of {args.rounds} rounds; limited = {LIMIT}:",
            rounds,
        )
        extra = medians["limited"].per_task - medians["none"].per_task
        print_ratio("limited / none throughput", medians, rounds, "limited", "none")
        print(f"extra Redis commands per task with a limit: {extra:+.1f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
