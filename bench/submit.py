"""Submit throughput: ``POST /api/v1/tasks`` through gunicorn, against a bare Celery endpoint.

Run from the repository root::

    .venv/bin/python bench/submit.py [--seconds 10] [--concurrency 8] [--workers 2]
                                     [--threads 8] [--rounds 3] [--warmup 200]

Method
------
* One private ``redis-server`` (``tests.harness.RedisServer``); no Celery worker, so queued
  messages simply accumulate in the list ``normal``. The database is flushed before every warm-up
  and every measured phase, so each phase starts from the same empty state.
* Two gunicorn servers with identical settings (``tests.harness.WebServer``: gthread,
  ``--workers`` x ``--threads``): *service* is the real app (``app:create_app()``: validation,
  envelope, one Lua ``EVALSHA`` that stores it and ``LPUSH``-es the Celery message); *bare* is
  ``bench/bare_app.py``, a Flask route that only parses the JSON and calls Celery's
  ``send_task`` for the same message (``echo``, queue ``normal``, time limits 300/310 s).
* Load: ``--concurrency`` client *processes*, each with one keep-alive ``http.client``
  connection, send the same JSON body in a closed loop (next request as soon as the previous
  response is read). All clients start together on a barrier and run for ``--seconds``;
  throughput is the number of 201 responses over the wall-clock window from the first client's
  start to the last one's end; latency is per request, client side, merged over the clients
  (p50/p99, nearest rank). Any other status or a connection error counts as an error.
* Each phase is preceded by ``--warmup`` requests (not measured). The targets are measured in
  alternation (service, bare, service, bare, ...) for ``--rounds`` rounds, and the table shows
  each target's median round by throughput (the lower middle one for an even count), to damp the
  noise of a shared machine. After every phase ``LLEN normal`` must equal the number of 201s.
* Redis round trips per submit are counted in-process, not from ``INFO`` (which counts commands,
  and a Lua script's inner commands too): the service app runs under Flask's test client with
  ``redis.connection.AbstractConnection.send_packed_command`` wrapped by a counter, one submit
  to warm up (connection set-up), then 100 counted submits. The same count is shown for the bare
  endpoint for reference (there it counts sends, some of which, like the result backend's
  ``SUBSCRIBE``, await no reply).
* Work per submit, also in-process and counted, so independent of the machine's load: Python
  function calls (cProfile; the test client's share is the same for both targets) and Redis
  commands executed (``INFO commandstats``, a script's inner commands included, ``EVALSHA``
  itself not), over ``WORK_SUBMITS`` submits after a warm-up, for the service and the bare app.

The load generator shares the CPUs with gunicorn and Redis; on a small machine its cost per
request (the same for both targets) compresses the ratio towards 1 rather than away from it.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import pstats
import queue
import shlex
import shutil
import signal
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from redis.connection import AbstractConnection  # noqa: E402

from tests.harness import RedisServer, WebServer  # noqa: E402

PATH = "/api/v1/tasks"
BODY = json.dumps(
    {
        "type": "echo",
        "payload": {"to": "user@example.com", "subject": "Welcome", "body": "Hello!"},
        "priority": 1,
    }
).encode()
HEADERS = {"Content-Type": "application/json"}
QUEUE = "normal"
TARGETS = {
    "service": "app:create_app()",
    "bare": "bench.bare_app:create_app()",
    # Stricter: no result-backend SUBSCRIBE/UNSUBSCRIBE per publish, just the LPUSH.
    "bare-noresult": "bench.bare_app:create_app(ignore_result=True)",
}
TARGET_RATIO = 0.9  # HTTP submit stays >= 0.9x the bare endpoint
ROUND_TRIP_SUBMITS = 100
WORK_SUBMITS = 300


# -- load generator ------------------------------------------------------------------------------


@dataclass
class ClientResult:
    """What one client process measured."""

    ok: int
    failures: Counter[str]
    started: float
    ended: float
    latencies: array  # seconds, of the 201 responses


def _client(host: str, port: int, seconds: float | None, limit: int | None, barrier: Barrier,
            results: Any) -> None:
    """One closed-loop client on one keep-alive connection (runs in its own process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.connect()
    except BaseException:
        barrier.abort()  # release the parent at once
        raise
    latencies = array("d")
    failures: Counter[str] = Counter()
    sent = 0
    clock = time.perf_counter
    barrier.wait(timeout=60)
    started = time.monotonic()
    deadline = started + seconds if seconds is not None else math.inf
    while (limit is None or sent < limit) and time.monotonic() < deadline:
        sent += 1
        t0 = clock()
        try:
            conn.request("POST", PATH, BODY, HEADERS)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            failures[type(exc).__name__] += 1
            conn.close()  # reconnects on the next request
            continue
        elapsed = clock() - t0
        if response.status == 201:
            latencies.append(elapsed)
        else:
            failures[f"HTTP {response.status}"] += 1
    ended = time.monotonic()
    conn.close()
    results.put(ClientResult(len(latencies), failures, started, ended, latencies))


@dataclass
class Phase:
    """One load phase against one server, all clients merged."""

    ok: int
    failures: Counter[str]
    seconds: float
    latencies: list[float] = field(repr=False)

    @property
    def errors(self) -> int:
        return sum(self.failures.values())

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the 201 latencies, in milliseconds."""
        if not self.latencies:
            return math.nan
        rank = max(1, math.ceil(q / 100 * len(self.latencies)))
        return self.latencies[rank - 1] * 1000


def run_load(url: str, concurrency: int, seconds: float | None = None,
             total: int | None = None) -> Phase:
    """Run ``concurrency`` client processes for ``seconds``, or for ``total`` requests in all."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    limit = math.ceil(total / concurrency) if total is not None else None
    ctx = mp.get_context()
    barrier = ctx.Barrier(concurrency + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(host, port, seconds, limit, barrier, results),
                    daemon=True, name=f"bench-client-{i}")
        for i in range(concurrency)
    ]
    try:
        for proc in procs:
            proc.start()
        barrier.wait(timeout=60)
        collected: list[ClientResult] = []
        deadline = time.monotonic() + (seconds or 0) + 120
        while len(collected) < concurrency:
            try:
                collected.append(results.get(timeout=1))
            except queue.Empty as exc:
                dead = [p.name for p in procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"load clients failed or hung: {dead}") from exc
        for proc in procs:
            proc.join(timeout=10)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join()
        results.close()
    failures: Counter[str] = Counter()
    latencies: list[float] = []
    for result in collected:
        failures.update(result.failures)
        latencies.extend(result.latencies)
    latencies.sort()
    window = max(r.ended for r in collected) - min(r.started for r in collected)
    return Phase(sum(r.ok for r in collected), failures, window, latencies)


# -- redis round trips ---------------------------------------------------------------------------


@contextmanager
def counting_redis_sends() -> Iterator[list[int]]:
    """Count every packed send of any redis-py connection (one request/response round trip)."""
    original = AbstractConnection.send_packed_command
    counter = [0]

    def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        counter[0] += 1
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def redis_sends_per_submit(factory: Callable[[], Any], redis_url: str,
                           submits: int = ROUND_TRIP_SUBMITS) -> tuple[int, float]:
    """``(sends of the first submit, mean sends per submit after it)`` with Flask's test client.

    Also checks that every submit returned 201 and queued exactly one message.
    """
    check = redis.Redis.from_url(redis_url)
    try:
        check.flushdb()
        client = factory().test_client()
        with counting_redis_sends() as counter:
            first = client.post(PATH, data=BODY, headers=HEADERS)
            first_sends = counter[0]
            counter[0] = 0
            statuses = [client.post(PATH, data=BODY, headers=HEADERS).status_code
                        for _ in range(submits)]
            steady = counter[0]
        queued = check.llen(QUEUE)
        if first.status_code != 201 or set(statuses) != {201} or queued != submits + 1:
            raise RuntimeError(f"in-process submits: statuses {Counter(statuses)}, "
                               f"first {first.status_code}, queued {queued} != {submits + 1}")
        return first_sends, steady / submits
    finally:
        check.flushdb()
        check.close()


def work_per_submit(factory: Callable[[], Any], redis_url: str, submits: int = WORK_SUBMITS
                    ) -> tuple[float, float]:
    """``(Python function calls, Redis commands executed)`` per submit with Flask's test
    client, after a warm-up: counts, so unlike throughput or CPU time they do not depend on
    what else the machine runs. Function calls are cProfile's (the app's and the test client's,
    the same for every target); Redis commands are ``INFO commandstats`` calls, a script's inner
    commands included and ``EVALSHA`` itself not."""
    check = redis.Redis.from_url(redis_url)
    try:
        check.flushdb()
        client = factory().test_client()
        for _ in range(100):
            client.post(PATH, data=BODY, headers=HEADERS)
        check.config_resetstat()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(submits):
            client.post(PATH, data=BODY, headers=HEADERS)
        profile.disable()
        commands = sum(int(stat["calls"]) for name, stat in check.info("commandstats").items()
                       if name not in ("cmdstat_evalsha", "cmdstat_eval"))
        return pstats.Stats(profile).total_calls / submits, commands / submits
    finally:
        check.flushdb()
        check.close()


def service_factory(redis_url: str) -> Callable[[], Any]:
    def build() -> Any:
        from app import create_app
        from celery_app.settings import Settings

        return create_app(Settings(redis_url=redis_url))

    return build


def bare_factory(redis_url: str) -> Callable[[], Any]:
    def build() -> Any:
        from bench.bare_app import create_app
        from celery_app.settings import Settings

        return create_app(Settings(redis_url=redis_url))

    return build


# -- driver --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per phase")
    parser.add_argument("--concurrency", type=int, default=8, help="client processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per target")
    parser.add_argument("--warmup", type=int, default=200, help="requests before each phase")
    args = parser.parse_args(argv)
    if min(args.seconds, args.concurrency, args.workers, args.threads, args.rounds) <= 0:
        parser.error("--seconds, --concurrency, --workers, --threads, --rounds must be > 0")
    return args


def _fmt_failures(failures: Counter[str]) -> str:
    return ", ".join(f"{kind} x{n}" for kind, n in failures.most_common()) or "-"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 on errors or queue mismatches (not on a slow ratio)."""
    args = parse_args(argv)
    print(f"command: {shlex.join(sys.orig_argv)}")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: nproc={cpus}, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}, load average {load}")
    print(f"setup: gunicorn -k gthread -w {args.workers} --threads {args.threads}; "
          f"{args.concurrency} client processes (keep-alive http.client); "
          f"{args.warmup} warm-up requests, then {args.seconds:g} s per phase; "
          f"{args.rounds} alternating rounds\n", flush=True)

    problems = 0
    rounds: dict[str, list[Phase]] = {name: [] for name in TARGETS}
    redis_server = RedisServer()
    servers: list[WebServer] = []
    interrupted = False
    try:
        redis_server.start()
        url = redis_server.url(0)
        db = redis.Redis.from_url(url)
        web: dict[str, WebServer] = {}
        for name, app in TARGETS.items():
            server = WebServer(url, workers=args.workers, threads=args.threads, app=app)
            servers.append(server)
            web[name] = server.start()

        for number in range(1, args.rounds + 1):
            for name, server in web.items():
                db.flushdb()
                if args.warmup:
                    warm = run_load(server.url, args.concurrency, total=args.warmup)
                    if warm.errors:
                        problems += warm.errors
                        print(f"round {number} {name}: warm-up errors: "
                              f"{_fmt_failures(warm.failures)}")
                db.flushdb()
                phase = run_load(server.url, args.concurrency, seconds=args.seconds)
                queued = db.llen(QUEUE)
                verdict = "OK" if queued == phase.ok else "MISMATCH"
                problems += phase.errors + (queued != phase.ok)
                rounds[name].append(phase)
                print(f"round {number}  {name:<13} {phase.rps:8.1f} req/s  "
                      f"p50 {phase.percentile_ms(50):6.2f} ms  "
                      f"p99 {phase.percentile_ms(99):6.2f} ms  "
                      f"errors {phase.errors} ({_fmt_failures(phase.failures)})  "
                      f"LLEN {QUEUE} {queued} vs {phase.ok} x 201: {verdict}", flush=True)
        db.flushdb()
        db.close()
        for server in servers:  # free the CPUs before the in-process measurement
            server.stop()

        median = {name: sorted(phases, key=lambda p: p.rps)[(len(phases) - 1) // 2]
                  for name, phases in rounds.items()}
        print(f"\nmedian round of {args.rounds} by throughput:\n")
        print("| target | req/s | p50 ms | p99 ms | errors |")
        print("|---|---:|---:|---:|---:|")
        for name, phase in median.items():
            print(f"| {name} | {phase.rps:.1f} | {phase.percentile_ms(50):.2f} | "
                  f"{phase.percentile_ms(99):.2f} | {phase.errors} |")
        ratio = median["service"].rps / median["bare"].rps if median["bare"].rps else math.nan
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        print(f"\nservice/bare throughput: {ratio:.2f} (target >= {TARGET_RATIO:.2f}: {verdict})")
        pairs = [s.rps / b.rps for s, b in zip(rounds["service"], rounds["bare"], strict=True)
                 if b.rps]
        print(f"per-round ratios (adjacent phases): {', '.join(f'{r:.2f}' for r in pairs)}")
        strict = median["bare-noresult"].rps
        print(f"service/bare-noresult throughput: "
              f"{median['service'].rps / strict if strict else math.nan:.2f}")

        rt_url = redis_server.url(1)
        first, per_submit = redis_sends_per_submit(service_factory(rt_url), rt_url)
        print(f"redis round trips per submit: {per_submit:.1f} "
              f"(over {ROUND_TRIP_SUBMITS} in-process submits after one warm-up; "
              f"the first submit of a process took {first}, connection set-up included)")
        first, per_submit = redis_sends_per_submit(bare_factory(rt_url), rt_url)
        print(f"bare send_task redis sends per submit: {per_submit:.1f} (first: {first})")
        for name, factory in (("service", service_factory), ("bare", bare_factory)):
            calls, commands = work_per_submit(factory(rt_url), rt_url)
            print(f"work per in-process submit, {name}: {calls:.0f} Python function calls, "
                  f"{commands:.1f} Redis commands (over {WORK_SUBMITS} submits)")
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping everything", file=sys.stderr)
    finally:
        for server in servers:
            server.stop()
        redis_server.stop()
        shutil.rmtree(redis_server.dir, ignore_errors=True)
    if interrupted:
        return 130
    if problems:
        print(f"\n{problems} problem(s): errors or queue mismatches above", file=sys.stderr)
        return 1
    return 0


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # run the cleanup in main()'s finally


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
