"""Long polls: N concurrent ``GET /api/v1/tasks/{id}?wait=S`` against short polling.

Run from the repository root::

    .venv/bin/python bench/longpoll.py [--waiters 500] [--hold 10] [--rounds 3]

Method
------
* One private ``redis-server`` and, fresh for every phase (so no phase inherits another's
  connection pool), one gunicorn web process (``tests.harness.WebServer``: gthread, 1 process,
  ``--threads`` threads — each parked long poll holds one thread), no Celery worker:
  ``--waiters`` tasks are created ``scheduled`` far in the future, so nothing but the
  benchmark changes them.
* **longpoll**: one client thread per task (its own keep-alive ``http.client`` connection) sends
  ``GET …?wait=60``. Once every request is out and 2 s have passed, the phase measures for
  ``--hold`` seconds: the web process's CPU time (``/proc/<pid>/stat`` utime + stime, gunicorn
  worker process), the number of Redis connections (``CLIENT LIST``, the benchmark's own
  excluded) and the Redis commands executed (``INFO commandstats``). Then every task is
  completed with ``PATCH`` (one client, in order), and each waiter's wake-up latency is the time
  from its task's ``PATCH`` answer to its own answer.
* **shortpoll** (the baseline: what a client without long polls does): the same N clients
  ``GET`` their task once per ``--interval`` second until it is final; same measurements.
* The two run in alternation for ``--rounds`` rounds; the table shows medians over rounds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.harness import RedisServer, WebServer  # noqa: E402

FAR = "2099-01-01T00:00:00Z"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def web_pids(master: int) -> list[int]:
    """gunicorn's worker processes (children of the master)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)


def request(
    conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None
) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def create_tasks(url: str, count: int) -> list[str]:
    conn = connection(url)
    ids = []
    for _ in range(count):
        status, body = request(conn, "POST", "/api/v1/tasks", {"type": "echo", "scheduled_at": FAR})
        assert status == 201, body
        ids.append(body["id"])
    conn.close()
    return ids


def redis_clients(client: redis.Redis) -> int:
    """Connections to Redis other than the benchmark's own."""
    return sum(1 for c in client.client_list() if c.get("name") != "bench")


def commands(client: redis.Redis) -> int:
    return sum(int(v["calls"]) for v in client.info("commandstats").values())


def phase(kind: str, server: RedisServer, client: redis.Redis, args: argparse.Namespace) -> dict:
    web = WebServer(server.url(), workers=1, threads=args.threads).start()
    try:
        return measure(kind, web, client, args.waiters, args.hold, args.interval)
    finally:
        web.stop()
        client.flushdb()


def measure(
    kind: str, web: WebServer, client: redis.Redis, waiters: int, hold: float, interval: float
) -> dict:
    ids = create_tasks(web.url, waiters)
    answered: dict[str, float] = {}
    requests_sent = [0]
    lock = threading.Lock()

    def longpoll(task_id: str) -> None:
        conn = connection(web.url)
        while True:
            with lock:
                requests_sent[0] += 1
            status, body = request(conn, "GET", f"/api/v1/tasks/{task_id}?wait=60")
            if body.get("state") == "completed":
                answered[task_id] = time.monotonic()
                return

    def shortpoll(task_id: str) -> None:
        conn = connection(web.url)
        while True:
            with lock:
                requests_sent[0] += 1
            status, body = request(conn, "GET", f"/api/v1/tasks/{task_id}")
            if body.get("state") == "completed":
                answered[task_id] = time.monotonic()
                return
            time.sleep(interval)

    target = longpoll if kind == "longpoll" else shortpoll
    threads = [threading.Thread(target=target, args=(t,), daemon=True) for t in ids]
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # every request out and parked (or polling at its steady rate)
    pids = web_pids(web.process.pid)
    cpu0, cmd0, sent0 = sum(map(cpu_seconds, pids)), commands(client), requests_sent[0]
    connections = []
    started = time.monotonic()
    while time.monotonic() - started < hold:
        connections.append(redis_clients(client))
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    cpu = sum(map(cpu_seconds, pids)) - cpu0
    cmds, sent = commands(client) - cmd0 - len(connections) * 1, requests_sent[0] - sent0
    conn = connection(web.url)
    finished: dict[str, float] = {}
    for task_id in ids:
        status, _ = request(conn, "PATCH", f"/api/v1/tasks/{task_id}", {"status": "completed"})
        assert status == 200
        finished[task_id] = time.monotonic()
    for thread in threads:
        thread.join(60)
    latencies = sorted((answered[t] - finished[t]) * 1000 for t in ids if t in answered)
    return {
        "kind": kind,
        "cpu_percent": 100 * cpu / elapsed,
        "redis_connections_max": max(connections),
        "redis_commands_per_s": cmds / elapsed,
        "requests_per_s": sent / elapsed,
        "wake_p50_ms": latencies[len(latencies) // 2],
        "wake_p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "answered": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waiters", type=int, default=500)
    parser.add_argument("--hold", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1024)
    args = parser.parse_args()

    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url(), decode_responses=True, client_name="bench")
        results: dict[str, list[dict]] = {"longpoll": [], "shortpoll": []}
        for n in range(args.rounds):
            for kind in ("longpoll", "shortpoll"):
                result = phase(kind, server, client, args)
                print(f"round {n + 1} {json.dumps(result)}", flush=True)
                results[kind].append(result)
        print(
            f"\n{args.waiters} waiters, 1 gunicorn gthread process x {args.threads} threads, "
            f"{args.hold:g} s held, short-poll interval {args.interval:g} s, medians of "
            f"{args.rounds} rounds\n"
        )
        columns = (
            "cpu_percent",
            "redis_connections_max",
            "redis_commands_per_s",
            "requests_per_s",
            "wake_p50_ms",
            "wake_p99_ms",
            "answered",
        )
        print("| mode | " + " | ".join(columns) + " |")
        print("|---|" + "---:|" * len(columns))
        for kind, rows in results.items():
            cells = [f"{statistics.median(r[c] for r in rows):.1f}" for c in columns]
            print(f"| {kind} | " + " | ".join(cells) + " |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
