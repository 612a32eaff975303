"""Batch submit against single submits: ``POST /api/v1/tasks/batch`` vs ``POST /api/v1/tasks``.

Run from the repository root::

    .venv/bin/python bench/batch.py [--tasks 1000] [--rounds 3] [--concurrency 4]

Method
------
* One private ``redis-server`` (``tests.harness.RedisServer``) and the real web process under
  gunicorn (``tests.harness.WebServer``: ``-k gthread -w 2 --threads 8``); no worker, so the
  Celery messages accumulate in the list ``normal``. The database is flushed and ``CONFIG
  RESETSTAT`` run before every phase.
* ``batch``: one keep-alive ``http.client`` connection sends one ``POST /api/v1/tasks/batch``
  holding ``--tasks`` copies of the ``bench/submit.py`` body (``echo``, priority 1); the time
  is that request's round trip (JSON encoding of the body excluded).
* ``single``: ``--tasks`` single ``POST /api/v1/tasks`` with the same body from
  ``--concurrency`` closed-loop client processes (``bench.submit.run_load``), first request
  to last response.
* Both must answer 201 and leave exactly ``--tasks`` messages in ``normal``. The phases
  alternate (batch, single, batch, ...) for ``--rounds`` rounds; each one's median round by
  throughput is shown and the ratio is of medians.
* **Redis commands per task**: ``INFO commandstats`` after each phase (Lua's inner commands
  count; ``INFO``/``CONFIG`` do not), divided by ``--tasks``.
* **Redis round trips per task** are counted in-process (``bench.submit.counting_redis_sends``
  wraps redis-py's ``send_packed_command``) under Flask's test client: one warm-up request,
  then one batch of ``--tasks``, and ``bench.submit.redis_sends_per_submit`` for singles.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.common import (  # noqa: E402
    Phase,
    alternate,
    command_stats,
    median_phase,
    print_header,
    print_ratio,
)
from bench.submit import (  # noqa: E402
    BODY,
    HEADERS,
    QUEUE,
    counting_redis_sends,
    redis_sends_per_submit,
    run_load,
    service_factory,
)
from tests.harness import RedisServer, WebServer  # noqa: E402

BATCH_PATH = "/api/v1/tasks/batch"


def batch_body(tasks: int) -> bytes:
    """A batch of ``tasks`` copies of the single-submit body."""
    item = json.loads(BODY)
    return json.dumps({"tasks": [item] * tasks}).encode()


def batch_phase(url: str, body: bytes, tasks: int) -> float:
    """Seconds for one batch request over a fresh keep-alive connection; raises unless 201."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    conn.connect()
    try:
        started = time.perf_counter()
        conn.request("POST", BATCH_PATH, body, HEADERS)
        response = conn.getresponse()
        answer = response.read()
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    if response.status != 201 or json.loads(answer)["count"] != tasks:
        raise RuntimeError(f"batch: HTTP {response.status}: {answer[:300]!r}")
    return elapsed


def single_phase(url: str, tasks: int, concurrency: int) -> float:
    """Seconds for ``tasks`` single submits; raises on any non-201."""
    phase = run_load(url, concurrency, total=tasks)
    if phase.errors or phase.ok != tasks:
        raise RuntimeError(f"single: {phase.ok} x 201 of {tasks}, failures {phase.failures}")
    return phase.seconds


def batch_round_trips(redis_url: str, tasks: int) -> float:
    """Redis sends per task of one batch of ``tasks``, in-process, after a warm-up batch of 1."""
    check = redis.Redis.from_url(redis_url)
    try:
        check.flushdb()
        client = service_factory(redis_url)().test_client()
        warm = client.post(BATCH_PATH, data=batch_body(1), headers=HEADERS)
        with counting_redis_sends() as counter:
            response = client.post(BATCH_PATH, data=batch_body(tasks), headers=HEADERS)
        if warm.status_code != 201 or response.status_code != 201:
            raise RuntimeError(f"in-process batch: {warm.status_code}, {response.status_code}")
        if check.llen(QUEUE) != tasks + 1:
            raise RuntimeError(f"in-process batch queued {check.llen(QUEUE)} != {tasks + 1}")
        return counter[0] / tasks
    finally:
        check.flushdb()
        check.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per phase (<= 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="client processes for the single submits"
    )
    args = parser.parse_args(argv)
    if not 0 < args.tasks <= 1000 or min(args.rounds, args.concurrency) <= 0:
        parser.error("--tasks must be 1-1000, --rounds and --concurrency > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; raises on any failed submit or queue mismatch."""
    args = parse_args(argv)
    print_header()
    body = batch_body(args.tasks)
    server = RedisServer().start()
    web: WebServer | None = None
    try:
        db = redis.Redis.from_url(server.url())
        web = WebServer(server.url(), workers=2, threads=8).start()
        url = web.url

        def measure(name: str) -> Phase:
            db.flushdb()
            db.config_resetstat()
            if name == "batch":
                seconds = batch_phase(url, body, args.tasks)
            else:
                seconds = single_phase(url, args.tasks, args.concurrency)
            commands = command_stats(db)
            queued = db.llen(QUEUE)
            if queued != args.tasks:
                raise RuntimeError(f"{name}: LLEN {QUEUE} {queued} != {args.tasks}")
            return Phase(args.tasks, seconds, commands)

        rounds = alternate(("batch", "single"), args.rounds, measure)
        db.flushdb()
        db.close()
        web.stop()

        rt_url = server.url(1)
        trips = {
            "batch": batch_round_trips(rt_url, args.tasks),
            "single": redis_sends_per_submit(service_factory(rt_url), rt_url)[1],
        }
        medians = {name: median_phase(phases) for name, phases in rounds.items()}
        print(f"\n{args.tasks} echo tasks per phase, median of {args.rounds} rounds:\n")
        print(
            "| submit | tasks/s (median) | rounds | Redis commands per task | "
            "Redis round trips per task |"
        )
        print("|---|---:|---|---:|---:|")
        for name, phase in medians.items():
            each = " / ".join(f"{p.rate:.0f}" for p in rounds[name])
            print(
                f"| {name} | {phase.rate:.0f} | {each} | {phase.per_task:.1f} | {trips[name]:.3f} |"
            )
        print_ratio("batch / single throughput", medians, rounds, "batch", "single", digits=1)
    finally:
        if web is not None:
            web.stop()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
