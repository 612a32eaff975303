"""Redis commands per task through a real worker, counted machine-independently.

Method: a private redis-server, one worker (prefork ``-c 2``, all four queues), ``--tasks``
``echo`` tasks submitted through the store, then ``INFO commandstats`` after ``CONFIG
RESETSTAT`` (Lua's inner calls included) once every task completed. Completion is watched
with ``ZCOUNT`` on the completed range of the state index, whose calls are left out of the
count; so are ``INFO``/``CONFIG``. Heartbeats and maintenance run meanwhile and are counted (a
few per second, independent of the number of tasks). ``EVALSHA`` plus ``FCALL`` per task is
the number of script round trips; the worker's BRPOP, acknowledgement and result writes are
Celery's own.

    .venv/bin/python bench/worker_commands.py --tasks 500
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import command_stats  # noqa: E402
from tests.harness import RedisServer, wait_for  # noqa: E402
from tests.service import Env  # noqa: E402

LEFT_OUT = frozenset({"zcount", "info", "config"})
#: Lowest score of a completed task in the state index (rank 4 × 2^46, celery_app/keys.py).
COMPLETED = 4 * 2**46


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    args = parser.parse_args()
    server = RedisServer().start()
    env = Env(server, 1, Path(tempfile.mkdtemp(prefix="tq-bench-")))
    try:
        env.worker(concurrency=2)
        env.redis.config_resetstat()
        started = time.monotonic()
        for n in range(args.tasks):
            env.submit(type="echo", payload={"n": n})
        wait_for(
            lambda: env.redis.zcount("tq:idx:state", COMPLETED, COMPLETED + 2**46 - 1)
            >= args.tasks,
            timeout=600,
            interval=0.2,
            message="every task to complete",
        )
        elapsed = time.monotonic() - started
        counted = command_stats(env.redis, skipped=LEFT_OUT)
        total = sum(counted.values())
        print(f"{args.tasks} echo tasks in {elapsed:.1f} s")
        print(f"redis commands per task: {total / args.tasks:.1f}")
        scripts = counted.get("evalsha", 0) + counted.get("fcall", 0)
        print(f"script calls (EVALSHA + FCALL) per task: {scripts / args.tasks:.2f}")
        for name, count in sorted(counted.items(), key=lambda kv: -kv[1])[:20]:
            print(f"  {name:16} {count / args.tasks:6.2f}")
    finally:
        env.close(flush=True)
        server.stop()


if __name__ == "__main__":
    main()
