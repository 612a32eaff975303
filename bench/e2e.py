"""Worker cost per task against bare Celery, and submit → completion through HTTP.

Run from the repository root::

    .venv/bin/python bench/e2e.py [--tasks 2000] [--rounds 7] [--http-tasks 1000]

Method
------
* One private ``redis-server`` on a free port (``tests.harness.RedisServer``), flushed before
  every phase.
* **Worker phases.** ``--tasks`` no-op ``echo`` tasks are queued first (spread evenly over the
  four priority queues), then one worker is started: ``celery worker -c 2 --pool prefork -Q
  critical,high,normal,low --without-mingle --without-gossip --loglevel INFO``. The time
  measured runs from the worker's ``ready.`` line to the last ``Task echo[…] succeeded`` line,
  both read from the worker's own log (millisecond timestamps, one clock): nothing polls Redis
  meanwhile. Targets:

  - ``service``: this service's worker (``-A celery_app``); tasks submitted through the
    store, as ``POST /api/v1/tasks`` does.
  - ``bare-same``: bare Celery with the service's configuration (``acks_late``, prefetch
    disabled, four queues in priority order, Redis result backend): ``bench/bare_worker.py``.
  - ``bare-defaults``: bare Celery with Celery's defaults (early ack, prefetch ×4, round-robin
    queues), same broker and result backend.
  - ``bare-events``: ``bare-same`` with ``-E`` (task events, what Flower's task views need).

  Bare tasks are published with ``send_task`` (queue, soft/hard time limits 300/310 s, as the
  service's messages carry).
* **Redis commands per task**: ``CONFIG RESETSTAT`` just before the worker starts, ``INFO
  commandstats`` once the last task is done, divided by ``--tasks``. Lua's inner commands
  count (``FCALL``/``EVALSHA`` and what they call); ``INFO`` and ``CONFIG`` are left out. The
  worker's start-up and periodic work (heartbeats, maintenance) are included, spread over the
  tasks. This count does not depend on the machine.
* **CPU per task** of Redis, the worker's main process and its pool children: user plus system
  time from ``/proc/<pid>/stat`` read at the ``ready.`` line and after the last task, divided
  by ``--tasks`` (10 ms clock ticks; Linux). Printed for each target's median round.
* **HTTP phases** (``--http-tasks``; 0 skips them): a worker (as above) and gunicorn
  (``-k gthread -w 2 --threads 8``) run; 4 client threads submit ``echo`` tasks with keep-alive
  connections; the time runs from the first request to the last task's ``succeeded`` line.
  ``service`` is the real app and worker; ``bare`` is ``bench/bare_app.py`` (a Flask route
  calling ``send_task``) with the ``bare-same`` worker.
* Targets alternate within each round (``--rounds``); the table shows each target's median
  round by throughput, and the ratios are of medians. The machine may be shared and busy:
  compare ratios measured in the same run, not absolute numbers across runs. Seven rounds by
  default: on a shared two-core machine one target's rounds of 2,000 tasks vary by a fifth
  either way, and a median of seven moves less than one of three.
"""

from __future__ import annotations

import argparse
import http.client
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.common import (  # noqa: E402
    WORKERS,
    Phase,
    WorkerRun,
    command_stats,
    measure_worker,
    print_header,
    report,
)
from celery_app import create_celery  # noqa: E402
from celery_app.model import QUEUES  # noqa: E402
from celery_app.settings import Settings  # noqa: E402
from celery_app.store import NewTask  # noqa: E402
from tests.harness import RedisServer, WebServer  # noqa: E402

#: HTTP targets: (gunicorn app, worker target).
HTTP_TARGETS = {
    "service": ("app:create_app()", "service"),
    "bare": ("bench.bare_app:create_app()", "bare-same"),
}
TARGETS = {
    "service / bare-same": (0.85, "service", "bare-same"),
    "service / bare-events": (1.15, "service", "bare-events"),
}
MAX_COMMANDS_PER_TASK = 25
HTTP_CLIENTS = 4


def queue_service_tasks(redis_url: str, count: int) -> None:
    """``count`` echo tasks through the service's store (what a submit does)."""
    celery = create_celery(Settings(redis_url=redis_url))
    store = celery.runtime.store
    for n in range(count):
        store.submit(NewTask(type="echo", payload={"n": n}, priority=QUEUES[n % len(QUEUES)]))


def queue_bare_tasks(redis_url: str, count: int) -> None:
    """``count`` echo messages published with plain ``send_task``."""
    from bench.bare_worker import create_celery as bare_celery

    celery = bare_celery("same", Settings(redis_url=redis_url))
    with celery.producer_or_acquire() as producer:
        for n in range(count):
            celery.send_task(
                "echo",
                kwargs={"n": n},
                queue=QUEUES[n % len(QUEUES)],
                soft_time_limit=300,
                time_limit=310,
                producer=producer,
            )


def worker_phase(target: str, server: RedisServer, tasks: int, log_dir: Path) -> Phase:
    """``tasks`` echo tasks queued (through the store for ``service``, ``send_task`` for the
    bare targets), then one ``target`` worker timed from ready to the last task done."""
    queue = queue_service_tasks if target == "service" else queue_bare_tasks
    return measure_worker(target, server, tasks, log_dir, lambda url: queue(url, tasks))


def _http_client(url: str, count: int, started: list[float], errors: list[str]) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    for n in range(count):
        started.append(time.time())
        priority = n % len(QUEUES)
        conn.request(
            "POST",
            "/api/v1/tasks",
            body=f'{{"type":"echo","payload":{{"n":{n}}},"priority":{priority}}}',
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            errors.append(str(response.status))
    conn.close()


def http_phase(target: str, server: RedisServer, tasks: int, log_dir: Path) -> Phase:
    app, worker_target = HTTP_TARGETS[target]
    client = redis.Redis.from_url(server.url())
    client.flushall()
    web = WebServer(server.url(), workers=2, threads=8, app=app).start()
    worker = WorkerRun(worker_target, server.url(), log_dir)
    try:
        worker.wait("ready", lambda: worker.ready_at is not None, timeout=60)
        client.config_resetstat()
        started: list[float] = []
        errors: list[str] = []
        per_client = tasks // HTTP_CLIENTS
        threads = [
            threading.Thread(target=_http_client, args=(web.url, per_client, started, errors))
            for _ in range(HTTP_CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise AssertionError(f"{target}: {len(errors)} failed submits: {Counter(errors)}")
        total = per_client * HTTP_CLIENTS
        worker.wait(f"{total} tasks", lambda: len(worker.done) >= total, timeout=600)
        commands = command_stats(client)
        return Phase(total, max(worker.done) - min(started), commands)
    finally:
        worker.stop()
        web.stop()
        client.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per worker phase")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds")
    parser.add_argument(
        "--http-tasks", type=int, default=1000, help="tasks per HTTP phase (0: no HTTP phases)"
    )
    parser.add_argument(
        "--targets", default=",".join(WORKERS), help="worker targets, comma separated"
    )
    args = parser.parse_args(argv)
    if min(args.tasks, args.rounds) <= 0 or args.http_tasks < 0:
        parser.error("--tasks and --rounds must be > 0, --http-tasks >= 0")
    return args


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # run the finally blocks: no worker or server is left behind


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    args = parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    print_header()
    server = RedisServer().start()
    log_dir = Path(tempfile.mkdtemp(prefix="tq-e2e-"))
    try:
        rounds: dict[str, list[Phase]] = {t: [] for t in targets}
        http_rounds: dict[str, list[Phase]] = {t: [] for t in HTTP_TARGETS}
        for number in range(1, args.rounds + 1):
            for target in targets:
                phase = worker_phase(target, server, args.tasks, log_dir)
                rounds[target].append(phase)
                print(
                    f"round {number} {target}: {phase.rate:.0f} tasks/s, "
                    f"{phase.per_task:.1f} commands/task",
                    flush=True,
                )
            for target in HTTP_TARGETS if args.http_tasks else ():
                phase = http_phase(target, server, args.http_tasks, log_dir)
                http_rounds[target].append(phase)
                print(f"round {number} http {target}: {phase.rate:.0f} tasks/s", flush=True)
        medians = report(
            f"worker: {args.tasks} tasks queued, then one worker -c 2 started "
            f"(ready → last done), median of {args.rounds} rounds:",
            rounds,
        )
        print()
        for label, (target, top, bottom) in TARGETS.items():
            if top in medians and bottom in medians:
                ratio = medians[top].rate / medians[bottom].rate
                pairs = [a.rate / b.rate for a, b in zip(rounds[top], rounds[bottom], strict=True)]
                print(
                    f"{label}: {ratio:.2f} (target >= {target}: "
                    f"{'met' if ratio >= target else 'NOT met'}); per round "
                    + ", ".join(f"{p:.2f}" for p in pairs)
                )
        if "service" in medians:
            per_task = medians["service"].per_task
            print(
                f"service Redis commands per task: {per_task:.1f} (target <= "
                f"{MAX_COMMANDS_PER_TASK}: "
                f"{'met' if per_task <= MAX_COMMANDS_PER_TASK else 'NOT met'})"
            )
        if args.http_tasks:
            http = report(
                f"HTTP: {args.http_tasks} submits from {HTTP_CLIENTS} keep-alive "
                f"clients to gunicorn (gthread 2x8) with one worker -c 2 running "
                f"(first request → last done), median of {args.rounds} rounds:",
                http_rounds,
            )
            print(f"\nhttp service / bare: {http['service'].rate / http['bare'].rate:.2f}")
    finally:
        server.stop()
        for leftover in log_dir.glob("*"):
            leftover.unlink()
        log_dir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
