"""WebSocket fan-out of one web process: event latency and submit latency at N clients.

Run from the repository root (needs the ``bench`` extra: ``.venv/bin/pip install -e '.[bench]'``)::

    .venv/bin/python bench/ws.py [--clients 100,500,1000] [--events 200] [--rate 20]
                                 [--client-procs 1] [--app SPEC] [--profile DIR]

Method
------
* One private ``redis-server`` (``tests.harness.RedisServer``), no Celery worker: every submit
  just leaves its message in the list ``low``. For each N a fresh gunicorn (``WebServer``:
  ``-k gthread -w 1 --threads N+64 --worker-connections 2N+100``) is started on a flushed
  database, and stopped afterwards. Each WebSocket holds one gunicorn thread for its lifetime
  (plus simple-websocket's reader thread), hence the thread count.
* N clients connect to ``/ws?types=task.submitted`` from ``--client-procs`` child processes, each
  one asyncio event loop driving websockets' sans-I/O ``ClientProtocol`` over plain asyncio
  transports. ``data_received`` only appends ``(time.time(), bytes)``; frames are parsed by a
  pump a few milliseconds later, a few connections at a time with the loop reading sockets in
  between, so the receive timestamp of a frame is the moment its last TCP chunk reached user
  space and is barely delayed by the parsing of other connections' frames. The children disable
  the garbage collector (no pauses while records pile up).
* Readiness: a warm-up task is POSTed (again every 2 s) until every client has received at least
  one frame, so every server-side subscription exists. The newest stream id at that point is the
  baseline; warm-up frames are not measured.
* Load: ``--events`` POST /api/v1/tasks (``{"type": "echo", "payload": {"n": 1}}``) at a fixed
  ``--rate`` over one keep-alive ``http.client`` connection from the parent process, each POST
  timed client side. Each submit appends exactly one ``task.submitted`` entry to ``tq:events``.
  The schedule is absolute; the POSTs are sequential, so when they take longer than the interval
  the next goes out at once and the rate achieved (shown in the details) is lower.
* Expected receipts: the ``task.submitted`` ids after the baseline read back from the stream
  (checked against the number of 201s), times N. The children wait (``--drain-timeout``) until
  every client holds every expected id, then report what each client got.
* Event latency of one receipt = receive time (ms since the epoch) - the ms part of the event id,
  which is the Redis server's clock when the transition appended the event (same machine, same
  clock; the id is truncated to the ms, so latency reads up to 1 ms high). p50/p99 are nearest
  rank over all (client, event) receipts; "last-client" is, per event, the latency of the last
  client to get it. Missing = expected receipts - distinct receipts (a client that failed to
  connect misses everything); duplicates and frames outside the expected set are reported too.
* Details table: user and system CPU of the gunicorn worker and CPU of the client processes
  over the load phase (submits and drain), from ``/proc``, 100 % being one core; the worker's
  context switches (all its threads, ``/proc/<pid>/task/*/status``) per receipt; its thread
  count and peak RSS.
* ``--app`` measures another gunicorn app spec (a variant of the service) the same way.
  ``--profile DIR`` runs ``py-spy record`` (``.venv/bin/pip install py-spy``) on the gunicorn
  worker during each load phase and writes ``DIR/ws-<N>.svg``; sampling 2N threads costs CPU,
  so take the numbers from a run without it.

Everything shares the machine: gunicorn (one process, so at most one core for Python), Redis,
the submitting parent and the clients. Exit status 1 if any expected receipt is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from websockets.client import ClientProtocol  # noqa: E402
from websockets.frames import Close, Opcode  # noqa: E402
from websockets.http11 import Response  # noqa: E402
from websockets.uri import parse_uri  # noqa: E402

from tests.harness import RedisServer, WebServer  # noqa: E402

WS_PATH = "/ws?types=task.submitted"
SUBMIT_PATH = "/api/v1/tasks"
SUBMIT_BODY = json.dumps({"type": "echo", "payload": {"n": 1}}).encode()
HEADERS = {"Content-Type": "application/json"}
EVENTS_KEY = "tq:events"
ID_PREFIX = b'{"id": "'  # how the service's json.dumps(frame) starts
PUMP_INTERVAL = 0.005
PUMP_BATCH = 32
CONNECT_CONCURRENCY = 64
EXTRA_THREADS = 64

#: One receipt: (event id, receive time in seconds since the epoch).
Receipt = tuple[str, float]


def id_key(event_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


# -- client side (child processes) --------------------------------------------------------------


class Client(asyncio.Protocol):
    """One WebSocket connection: timestamps chunks on arrival, parses them later."""

    def __init__(self, uri: str, dirty: set[Client]) -> None:
        self.protocol = ClientProtocol(parse_uri(uri))
        self.dirty = dirty
        self.chunks: list[tuple[float, bytes]] = []
        self.receipts: list[Receipt] = []
        self.other_frames = 0
        self.partial: bytearray | None = None
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.close_reason = ""
        self.lost = False

    # asyncio callbacks: keep data_received minimal
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.chunks.append((time.time(), data))
        if self.opened.done():
            self.dirty.add(self)
        else:
            self.pump()  # the handshake response: parse at once

    def eof_received(self) -> bool | None:
        self.chunks.append((time.time(), b""))  # b"": end of stream, after the pending chunks
        self.dirty.add(self)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))

    def pump(self) -> None:
        """Parse the pending chunks; each complete message gets its last chunk's time."""
        chunks, self.chunks = self.chunks, []
        for received, data in chunks:
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            for event in self.protocol.events_received():
                if isinstance(event, Response):
                    self._handshake_done()
                elif event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                    if event.opcode is Opcode.CONT and self.partial is not None:
                        self.partial += event.data
                    else:
                        self.partial = bytearray(event.data) if not event.fin else None
                    if event.fin:
                        message = bytes(self.partial) if self.partial is not None else event.data
                        self.partial = None
                        self._message(received, message)
                elif event.opcode is Opcode.CLOSE:
                    close = Close.parse(event.data) if event.data else None
                    self.close_code = close.code if close else 1005
                    self.close_reason = close.reason if close else ""
        self._flush()  # pongs, close replies

    def _handshake_done(self) -> None:
        if self.opened.done():
            return
        if self.protocol.handshake_exc is not None:
            self.opened.set_exception(self.protocol.handshake_exc)
        else:
            self.opened.set_result(None)

    def _message(self, received: float, message: bytes) -> None:
        if message.startswith(ID_PREFIX):
            end = message.find(b'"', len(ID_PREFIX))
            self.receipts.append((message[len(ID_PREFIX):end].decode(), received))
            return
        try:  # not the expected layout: parse properly
            frame = json.loads(message)
        except ValueError:
            frame = None
        if isinstance(frame, dict) and isinstance(frame.get("id"), str):
            self.receipts.append((frame["id"], received))
        else:
            self.other_frames += 1

    def _flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with suppress(Exception):
                self.protocol.send_close(1000)
                self._flush()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def after(self, baseline: tuple[int, int]) -> list[Receipt]:
        """The receipts of events newer than ``baseline`` (arrival order)."""
        return [r for r in self.receipts if id_key(r[0]) > baseline]


async def _pump_forever(dirty: set[Client]) -> None:
    """Parse what arrived, a few connections at a time, letting the loop read in between."""
    while True:
        await asyncio.sleep(PUMP_INTERVAL)
        while dirty:
            for _ in range(min(PUMP_BATCH, len(dirty))):
                dirty.pop().pump()
            await asyncio.sleep(0)  # the sockets that became readable meanwhile come first


async def _open(uri: str, host: str, port: int, dirty: set[Client],
                gate: asyncio.Semaphore) -> Client:
    async with gate:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: Client(uri, dirty), host, port)
        await asyncio.wait_for(client.opened, timeout=30)
        return client


async def _client_session(uri: str, count: int, pipe: Connection) -> None:
    """Open ``count`` connections, then answer the parent's commands until told to stop."""
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[Any] = asyncio.Queue()

    def on_command() -> None:
        try:
            commands.put_nowait(pipe.recv())
        except EOFError:
            loop.remove_reader(pipe.fileno())
            commands.put_nowait(("stop",))

    loop.add_reader(pipe.fileno(), on_command)
    dirty: set[Client] = set()
    pumper = asyncio.create_task(_pump_forever(dirty))
    parts = urlsplit(uri)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(_open(uri, parts.hostname or "127.0.0.1", parts.port or 80, dirty, gate)
          for _ in range(count)),
        return_exceptions=True)
    clients = [c for c in outcomes if isinstance(c, Client)]
    errors = [f"{type(e).__name__}: {e}" for e in outcomes if not isinstance(e, Client)]
    pipe.send(("connected", len(clients), errors, time.monotonic() - started))
    try:
        while True:
            command = await commands.get()
            if command[0] == "ready?":
                for client in clients:
                    client.pump()
                pipe.send(("ready", sum(1 for c in clients if c.receipts),
                           sum(1 for c in clients if c.lost)))
            elif command[0] == "collect":
                _, baseline, expected, timeout = command
                await _drain(clients, baseline, expected, timeout)
                for client in clients:
                    client.pump()
                pipe.send(("results", [c.after(baseline) for c in clients],
                           [c.other_frames for c in clients],
                           [(c.close_code, c.close_reason) for c in clients
                            if c.close_code is not None or c.lost]))
            elif command[0] == "stop":
                break
    finally:
        pumper.cancel()
        for client in clients:
            client.close()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not all(c.lost for c in clients):
            for client in clients:
                client.pump()
            await asyncio.sleep(0.05)
        for client in clients:
            client.abort()


async def _drain(clients: Sequence[Client], baseline: tuple[int, int], expected: int,
                 timeout: float) -> None:
    """Wait until every open client holds ``expected`` receipts after ``baseline``, or timeout.

    Only counts, leaving the parsing to the pump (frames may still be arriving, and their
    timestamps must not wait for this); the parent checks the ids.
    """
    deadline = time.monotonic() + timeout
    waiting = {c: None for c in clients if not c.lost}  # client -> index of its first new receipt
    while waiting and time.monotonic() < deadline:
        for client in list(waiting):
            start = waiting[client]
            if start is None:
                start = next((i for i, r in enumerate(client.receipts)
                              if id_key(r[0]) > baseline), None)
                waiting[client] = start
            if client.lost or (start is not None and len(client.receipts) - start >= expected):
                del waiting[client]
        if waiting:
            await asyncio.sleep(0.05)


def client_process(uri: str, count: int, pipe: Connection) -> None:
    """Entry point of one client child process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    gc.disable()
    asyncio.run(_client_session(uri, count, pipe))


# -- server side ---------------------------------------------------------------------------------


class FanoutServer(WebServer):
    """``WebServer`` with one worker, a thread per client and room for 2N connections."""

    def __init__(self, redis_url: str, clients: int, app: str = "app:create_app()") -> None:
        super().__init__(redis_url, workers=1, threads=clients + EXTRA_THREADS, app=app)
        self.args = self.args[:-1] + ["--worker-connections", str(clients * 2 + 100)] + \
            self.args[-1:]

    def worker_pid(self) -> int | None:
        """The pid of gunicorn's (only) worker process."""
        if self.process is None:
            return None
        found = children(self.process.pid)
        return found[0] if found else None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int | None) -> tuple[float, float]:
    """``(user, system)`` CPU seconds of ``pid`` so far (zeros if it is gone)."""
    if pid is None:
        return 0.0, 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def context_switches(pid: int | None) -> int:
    """Voluntary + involuntary context switches summed over the live threads of ``pid``."""
    total = 0
    if pid is None:
        return total
    with suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with suppress(OSError):
                for line in (task / "status").read_text().splitlines():
                    if "ctxt_switches:" in line:
                        total += int(line.split(":", 1)[1])
    return total


def proc_status(pid: int | None, key: str) -> str:
    """One field of ``/proc/<pid>/status`` (e.g. ``Threads``), or ``?``."""
    if pid is None:
        return "?"
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return "?"


class Submitter:
    """Keep-alive POSTs of the submit body; reconnects once after a dropped connection."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                               timeout=30)

    def post(self) -> tuple[int, float]:
        """``(status, seconds)`` of one POST, a retry included; status 0 for a connection error."""
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                self.conn.request("POST", SUBMIT_PATH, SUBMIT_BODY, HEADERS)
                response = self.conn.getresponse()
                response.read()
                return response.status, time.perf_counter() - started
            except (OSError, http.client.HTTPException):
                self.conn.close()
                if attempt == 2:
                    return 0, time.perf_counter() - started
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def submit_at_rate(url: str, count: int, rate: float) -> list[tuple[float, int, float]]:
    """``count`` POSTs on a fixed schedule of ``rate`` per second.

    ``(monotonic start, status, seconds)`` for each.
    """
    submitter = Submitter(url)
    results = []
    start = time.monotonic()
    try:
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            results.append((time.monotonic(), *submitter.post()))
    finally:
        submitter.close()
    return results


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one N measured."""

    clients: int
    events: int = 0
    connected: int = 0
    connect_seconds: float = 0.0
    connect_errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # ms, every distinct receipt, sorted
    last_client: list[float] = field(default_factory=list)  # ms, per event, sorted
    submits: list[float] = field(default_factory=list)  # ms, the 201s, sorted
    submit_errors: int = 0
    submit_rate: float = math.nan  # achieved, from the first POST's start to the last one's
    missing: int = 0
    duplicates: int = 0
    unexpected: int = 0
    closes: dict[str, int] = field(default_factory=dict)
    worker_user: float = math.nan  # % of one core over the load phase
    worker_system: float = math.nan
    client_cpu: float = math.nan
    switches_per_receipt: float = math.nan  # worker context switches
    threads: str = "?"
    rss: str = "?"
    problem: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (nan if empty)."""
    if not values:
        return math.nan
    return values[max(1, math.ceil(q / 100 * len(values))) - 1]


class ClientPool:
    """The client child processes of one run."""

    def __init__(self, ws_url: str, clients: int, procs: int) -> None:
        ctx = mp.get_context("spawn")
        procs = max(1, min(procs, clients))
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(procs):
            share = clients // procs + (i < clients % procs)
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_process, args=(ws_url, share, child), daemon=True,
                               name=f"ws-clients-{i}")
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def ask(self, command: tuple[Any, ...], timeout: float) -> list[tuple[Any, ...]]:
        for pipe in self.pipes:
            pipe.send(command)
        return self.replies(timeout)

    def replies(self, timeout: float) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + timeout
        replies = []
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            while not pipe.poll(0.1):
                if not proc.is_alive():
                    raise RuntimeError(f"{proc.name} exited with {proc.exitcode}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{proc.name} did not answer within {timeout:g} s")
            replies.append(pipe.recv())
        return replies

    def cpu_seconds(self) -> float:
        return sum(sum(cpu_seconds(proc.pid)) for proc in self.procs)

    def stop(self) -> None:
        for pipe in self.pipes:
            with suppress(OSError):
                pipe.send(("stop",))
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for pipe in self.pipes:
            pipe.close()


@contextmanager
def py_spy(pid: int | None, output: Path | None, seconds: float) -> Iterator[None]:
    """``py-spy record`` on ``pid`` for about ``seconds`` while the block runs (if asked)."""
    if output is None or pid is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "--pid", str(pid), "--duration", str(math.ceil(seconds)),
               "--rate", "200", "--nonblocking", "--output", str(output)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
        proc.wait(timeout=seconds + 30)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()


def measure(redis_url: str, db: redis.Redis, clients: int, args: argparse.Namespace) -> Run:
    """Start a server, connect ``clients``, send the events, and collect what arrived."""
    run = Run(clients)
    db.flushdb()
    server = FanoutServer(redis_url, clients, args.app)
    pool: ClientPool | None = None
    try:
        server.start()
        worker = server.worker_pid()
        ws_url = server.url.replace("http://", "ws://") + WS_PATH
        pool = ClientPool(ws_url, clients, args.client_procs)
        connected = pool.replies(timeout=120)
        run.connected = sum(r[1] for r in connected)
        run.connect_errors = [e for r in connected for e in r[2]]
        run.connect_seconds = max(r[3] for r in connected)

        # readiness: every client got a warm-up event, so every subscription exists
        warm = Submitter(server.url)
        deadline = time.monotonic() + 60
        try:
            while True:
                status, _ = warm.post()
                if status != 201:
                    raise RuntimeError(f"warm-up submit returned {status}")
                poll_until = time.monotonic() + 2
                while True:
                    ready = pool.ask(("ready?",), timeout=30)
                    got = sum(r[1] for r in ready)
                    if got >= run.connected or time.monotonic() > poll_until:
                        break
                    time.sleep(0.1)
                if got >= run.connected:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {got} of {run.connected} clients got a warm-up "
                                       f"event within 60 s")
        finally:
            warm.close()
        newest = db.xrevrange(EVENTS_KEY, count=1)
        baseline = newest[0][0].decode() if newest else "0-0"

        # load
        switches = context_switches(worker)
        worker_cpu, client_cpu, started = cpu_seconds(worker), pool.cpu_seconds(), time.monotonic()
        profile = args.profile / f"ws-{clients}.svg" if args.profile else None
        with py_spy(worker, profile, args.events / args.rate + 1):
            results = submit_at_rate(server.url, args.events, args.rate)
        if len(results) > 1:
            run.submit_rate = (len(results) - 1) / (results[-1][0] - results[0][0])
        run.submits = sorted(s * 1000 for _, status, s in results if status == 201)
        run.submit_errors = len(results) - len(run.submits)
        expected = [entry_id.decode() for entry_id, fields in
                    db.xrange(EVENTS_KEY, min=f"({baseline}")
                    if fields.get(b"type") == b"task.submitted"]
        if len(expected) != len(run.submits):
            run.problem = (f"{len(run.submits)} submits returned 201 but the stream has "
                           f"{len(expected)} task.submitted events after the baseline")
        run.events = len(expected)
        collected = pool.ask(("collect", id_key(baseline), len(expected), args.drain_timeout),
                             timeout=args.drain_timeout + 60)
        elapsed = time.monotonic() - started
        user, system = cpu_seconds(worker)
        run.worker_user = (user - worker_cpu[0]) / elapsed * 100
        run.worker_system = (system - worker_cpu[1]) / elapsed * 100
        run.client_cpu = (pool.cpu_seconds() - client_cpu) / elapsed * 100
        switches = context_switches(worker) - switches
        run.threads = proc_status(worker, "Threads")
        run.rss = proc_status(worker, "VmHWM")
        analyse(run, expected, collected)
        if run.latencies:
            run.switches_per_receipt = switches / len(run.latencies)
    finally:
        if pool is not None:
            pool.stop()
        server.stop()
    return run


def analyse(run: Run, expected: list[str], collected: list[tuple[Any, ...]]) -> None:
    """Fill in latencies, missing/duplicate/unexpected counts and close reasons."""
    sent_ms = {event_id: id_key(event_id)[0] for event_id in expected}
    last: dict[str, float] = {}
    latencies = []
    receipts = 0
    for reply in collected:
        _, per_client, other_frames, closes = reply
        run.unexpected += sum(other_frames)
        for code, reason in closes:
            label = f"{code} {reason}".strip() if code is not None else "dropped"
            run.closes[label] = run.closes.get(label, 0) + 1
        for client_receipts in per_client:
            seen: set[str] = set()
            for event_id, received in client_receipts:
                if event_id not in sent_ms:
                    run.unexpected += 1
                elif event_id in seen:
                    run.duplicates += 1
                else:
                    seen.add(event_id)
                    latency = received * 1000 - sent_ms[event_id]
                    latencies.append(latency)
                    if latency > last.get(event_id, -math.inf):
                        last[event_id] = latency
            receipts += len(seen)
    run.missing = run.clients * len(expected) - receipts
    run.latencies = sorted(latencies)
    run.last_client = sorted(last.values())


# -- driver --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="100,500,1000",
                        help="comma-separated client counts, one fresh server each")
    parser.add_argument("--events", type=int, default=200, help="measured submits per count")
    parser.add_argument("--rate", type=float, default=20, help="submits per second")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="processes the clients are spread over (one event loop each)")
    parser.add_argument("--drain-timeout", type=float, default=15,
                        help="seconds to wait after the last submit for every receipt")
    parser.add_argument("--target-ms", type=float, default=50, help="p99 event latency target")
    parser.add_argument("--target-clients", type=int, default=500,
                        help="client count the target applies to")
    parser.add_argument("--app", default="app:create_app()",
                        help="gunicorn app spec, to compare a variant of the service")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a py-spy flame graph of the worker per count to this folder")
    args = parser.parse_args(argv)
    try:
        args.client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    except ValueError:
        parser.error("--clients must be comma-separated integers")
    if not args.client_counts or min(args.client_counts) <= 0:
        parser.error("--clients must be positive integers")
    if min(args.events, args.rate, args.client_procs, args.drain_timeout) <= 0:
        parser.error("--events, --rate, --client-procs, --drain-timeout must be > 0")
    return args


def raise_open_files(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE (inherited by gunicorn and the clients) towards ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, needed))
    if target != resource.RLIM_INFINITY and target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print("| clients | events | event p50 ms | event p99 ms | submit p50 ms | submit p99 ms "
          "| missing |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        missing = str(run.missing)
        if run.duplicates or run.unexpected:
            missing += f" ({run.duplicates} dup, {run.unexpected} unexpected)"
        print(f"| {run.clients} | {run.events} | {_fmt(percentile(run.latencies, 50))} | "
              f"{_fmt(percentile(run.latencies, 99))} | {_fmt(percentile(run.submits, 50))} | "
              f"{_fmt(percentile(run.submits, 99))} | {missing} |")
    print("\ndetails:\n")
    print("| clients | connected | connect s | event max ms | last-client p50 ms "
          "| last-client p99 ms | submits/s achieved | worker CPU % user+sys "
          "| worker ctx switches / receipt | client CPU % | worker threads | worker peak RSS "
          "| submit errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        print(f"| {run.clients} | {run.connected} | {run.connect_seconds:.1f} | "
              f"{_fmt(run.latencies[-1] if run.latencies else math.nan)} | "
              f"{_fmt(percentile(run.last_client, 50))} | "
              f"{_fmt(percentile(run.last_client, 99))} | "
              f"{_fmt(run.submit_rate)} | "
              f"{run.worker_user:.0f}+{run.worker_system:.0f} | "
              f"{_fmt(run.switches_per_receipt)} | {_fmt(run.client_cpu)} | {run.threads} | "
              f"{run.rss} | {run.submit_errors} |")
    for run in runs:
        notes = []
        if run.connect_errors:
            kinds: dict[str, int] = {}
            for error in run.connect_errors:
                kinds[error] = kinds.get(error, 0) + 1
            notes.append("connect errors: " + ", ".join(f"{k} x{n}" for k, n in kinds.items()))
        if run.closes:
            notes.append("closed by server: " +
                         ", ".join(f"{k} x{n}" for k, n in run.closes.items()))
        if run.problem:
            notes.append(run.problem)
        for note in notes:
            print(f"\n{run.clients} clients: {note}")
    target = next((r for r in runs if r.clients == args.target_clients), None)
    if target is not None:
        p99 = percentile(target.latencies, 99)
        verdict = "met" if p99 < args.target_ms else "NOT met"
        print(f"\ntarget: event p99 < {args.target_ms:g} ms at {args.target_clients} clients: "
              f"{verdict} (p99 {_fmt(p99)} ms)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for every client count.

    Exit status 1 if a receipt is missing, a count failed, or the stream disagrees with the 201s.
    """
    args = parse_args(argv)
    limit = raise_open_files(4 * max(args.client_counts) + 1000)
    print(f"command: {shlex.join(sys.orig_argv)}")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: nproc={cpus}, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}, load average {load}, open-file limit {limit}")
    print(f"setup: {args.app} in one gunicorn worker (-k gthread, --threads N+{EXTRA_THREADS}, "
          f"--worker-connections 2N+100); clients on /ws?types=task.submitted in "
          f"{args.client_procs} asyncio process(es); {args.events} submits at "
          f"{args.rate:g}/s per N over one keep-alive connection\n", flush=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    runs: list[Run] = []
    failed: list[int] = []
    redis_server = RedisServer()
    interrupted = False
    try:
        redis_server.start()
        url = redis_server.url(0)
        db = redis.Redis.from_url(url)
        for clients in args.client_counts:
            started = time.monotonic()
            try:
                run = measure(url, db, clients, args)
            except Exception as exc:  # report it, go on with the next count
                failed.append(clients)
                print(f"{clients} clients: FAILED: {type(exc).__name__}: {exc}", flush=True)
                continue
            runs.append(run)
            print(f"{clients} clients: {run.connected} connected in {run.connect_seconds:.1f} s, "
                  f"{run.events} events, p99 {_fmt(percentile(run.latencies, 99))} ms, "
                  f"missing {run.missing} ({time.monotonic() - started:.0f} s)", flush=True)
        db.flushdb()
        db.close()
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping everything", file=sys.stderr)
    finally:
        redis_server.stop()
    if runs:
        print()
        report(runs, args)
    if interrupted:
        return 130
    status = 0
    if any(run.missing for run in runs):
        print("\nsome expected receipts are missing", file=sys.stderr)
        status = 1
    if failed or any(run.problem for run in runs):
        print(f"\nfailed counts: {failed or 'none'}; see the notes above", file=sys.stderr)
        status = 1
    return status


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # run the cleanup in main()'s finally


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
