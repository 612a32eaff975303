"""Listing and statistics cost as stored tasks grow: 10k, 100k and 1M envelopes.

Method: a private redis-server is filled with N real envelopes through the store's own submit
script (pipelined, adopting mode: envelope, indexes and event, no Celery message), a third of
them moved to other states through the store's transitions so the per-state indexes are not
trivial. Then ``GET /api/v1/tasks`` is timed in-process through the Flask app (so the numbers
are the app's and Redis's work, not an HTTP client's): page 1 and a deep page (the middle of
the index), unfiltered and filtered by status, sorted by created_at and by priority; combined
filters (status with the updated sort, state with priority, state with a rare type: one task in
a thousand is ``fail``; status with a common type, and priority with the updated sort, which no
index orders); plus ``GET /api/v1/tasks/statistics``. Each figure is the median and p99 of
``--requests`` calls. "Flat" means the figures do not grow with N: index ranges make a page
O(log n + page size); state with the rare type reads that type's tasks; status with a common
type and priority with the updated sort walk one filter's ranges checking the other, a page or
two at page 1.

    .venv/bin/python bench/listing.py                 # 10k, 100k, 1M (about 4 minutes)
    .venv/bin/python bench/listing.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from celery_app import keys, model  # noqa: E402
from celery_app.settings import Settings  # noqa: E402
from tests.harness import RedisServer  # noqa: E402

BATCH = 2000
QUERIES = {
    "page 1": "page=1&page_size=20",
    "deep page": "page={deep}&page_size=20",
    "status=pending, page 1": "status=pending&page=1&page_size=20",
    "sort_by=priority, deep": "sort_by=priority&page={deep}&page_size=20",
    "status=pending&sort_by=updated_at, deep": "status=pending&sort_by=updated_at&page={deep}"
                                              "&page_size=20",
    "state=cancelled&priority=high, deep": "state=cancelled&priority=high&page={deep_small}"
                                           "&page_size=20",
    "state=cancelled&type=fail": "state=cancelled&type=fail&page=1&page_size=20",
    "status=pending&type=echo, page 1": "status=pending&type=echo&page=1&page_size=20",
    "priority=high&sort_by=updated_at, page 1": "priority=high&sort_by=updated_at&page=1"
                                                "&page_size=20",
}


def fill(app, target: int) -> None:
    """Add envelopes until ``target`` are stored (real submit script, pipelined)."""
    runtime = app.extensions["taskqueue"].celery.runtime
    client, scripts = runtime.redis, runtime.scripts  # production scripts, batched
    stored = before = client.zcard(keys.index("created"))
    priorities = list(model.PRIORITIES)
    while stored < target:
        pipe = client.pipeline(transaction=False)
        count = min(BATCH, target - stored)
        for n in range(count):
            task_id = model.new_task_id()
            envelope = {
                "id": task_id, "type": "fail" if (stored + n) % 1000 == 0 else "echo",
                "payload": {"n": stored + n}, "priority": priorities[(stored + n) % 4],
                "state": model.PENDING, "progress": 0, "attempts": 0, "max_retries": 3,
                "timeout": 300, "metadata": {},
            }
            flat = [item for pair in model.encode(envelope).items() for item in pair]
            scripts.run("submit", [keys.task(task_id)], task_id, "", 0, "bench", "", "", "",
                        *flat, client=pipe)
        pipe.execute()
        stored += count
    # every third new task (created order: all types and priorities) cancelled, through the
    # store's transitions, so that the per-state indexes are not trivial
    ids = client.zrange(keys.index("created"), before, -1)[::3]
    for chunk in range(0, len(ids), BATCH):
        pipe = client.pipeline(transaction=False)
        for task_id in ids[chunk:chunk + BATCH]:
            scripts.run("cancel", [keys.task(task_id)], task_id, client=pipe)
        pipe.execute()
    client.delete(keys.events())  # the bench's events are not part of what is measured


def timed(client, path: str, requests: int) -> tuple[float, float]:
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.get_json()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def redis_work(redis, client, path: str, requests: int = 10) -> tuple[float, float]:
    """Redis commands per request (Lua's inner calls included; load-independent) and the
    server's mean time in the request's scripts (µs), from ``INFO commandstats`` around
    ``requests`` requests."""
    redis.config_resetstat()
    for _ in range(requests):
        assert client.get(path).status_code == 200
    stats = redis.info("commandstats")
    commands = sum(v["calls"] for k, v in stats.items() if not k.startswith("cmdstat_config"))
    script_us = sum(v["usec"] for k, v in stats.items()
                    if k in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_fcall"))
    return commands / requests, script_us / requests  # INFO is counted after it answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"command: {shlex.join(sys.orig_argv)}")
    print(f"machine: nproc={os.cpu_count()}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    server = RedisServer().start()
    try:
        app = create_app(Settings(redis_url=server.url()))
        client = app.test_client()
        redis = app.extensions["taskqueue"].celery.runtime.redis
        rows, work_rows = [], []
        for size in sizes:
            started = time.monotonic()
            fill(app, size)
            memory = redis.info("memory")["used_memory"]
            print(f"stored {size} tasks in {time.monotonic() - started:.0f} s "
                  f"({memory / size:.0f} bytes of Redis memory per task)", flush=True)
            deep = size // 20 // 2
            row, work = [f"{size:,}"], [f"{size:,}"]
            paths = ["/api/v1/tasks?" + query.format(deep=deep, deep_small=deep // 12)
                     for query in QUERIES.values()] + ["/api/v1/tasks/statistics"]
            for path in paths:
                p50, p99 = timed(client, path, args.requests)
                row.append(f"{p50:.2f} / {p99:.2f}")
                commands, script_us = redis_work(redis, client, path)
                work.append(f"{commands:.0f} / {script_us:.0f}")
            rows.append(row)
            work_rows.append(work)
        header = "| stored tasks | " + " | ".join(QUERIES) + " | statistics |"
        rule = "|---" * (len(QUERIES) + 2) + "|"
        print("\nmedian / p99 ms per request (in-process Flask app + Redis):\n")
        print(header + "\n" + rule)
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print("\nRedis commands per request (Lua's inner calls included) / µs in scripts, "
              "mean of 10 requests:\n")
        print(header + "\n" + rule)
        for row in work_rows:
            print("| " + " | ".join(row) + " |")
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
