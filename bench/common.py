"""What the benchmark drivers share: the run header, Redis command counts, phases and their
alternating rounds and medians, and one Celery worker run timed from its own log.

The drivers (``bench/e2e.py``, ``bench/limits.py``, ``bench/batch.py``,
``bench/worker_commands.py``) put the repository root on ``sys.path`` and then import this
module. A *phase* is one measurement of one target; targets alternate within each round and a
target's result is its median round by throughput, so that a shared, busy machine slows every
target alike.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis

from celery_app.model import QUEUES
from tests.harness import RedisServer, service_env, wait_for

ROOT = Path(__file__).resolve().parent.parent

#: Worker targets: (``-A`` app, ``BARE_VARIANT``, extra worker arguments).
WORKERS = {
    "service": ("celery_app", None, []),
    "bare-same": ("bench.bare_worker", "same", []),
    "bare-defaults": ("bench.bare_worker", "defaults", []),
    "bare-events": ("bench.bare_worker", "same", ["-E"]),
}
READY = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/MainProcess\] \S+ ready\.")
SUCCEEDED = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/[\w-]+\] "
    r"Task echo\[[^\]]+\] succeeded"
)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Left out of :func:`command_stats` by default (the benchmark's own reads).
SKIPPED_COMMANDS = frozenset({"info", "config"})


def print_header() -> None:
    """Print the command line and the machine (cores, load average) a run's numbers belong to."""
    print(f"command: {shlex.join(sys.orig_argv)}")
    print(
        f"machine: nproc={os.cpu_count()}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )


def _stamp(text: str) -> float:
    """A worker log timestamp (local time) as epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


class WorkerRun:
    """One worker subprocess whose log is followed for ``ready.`` and ``succeeded`` lines."""

    def __init__(self, target: str, redis_url: str, log_dir: Path) -> None:
        app, variant, extra = WORKERS[target]
        env = service_env(redis_url)
        if variant:
            env["BARE_VARIANT"] = variant
        self.log_path = log_dir / f"{target}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                app,
                "worker",
                "-Q",
                ",".join(QUEUES),
                "-c",
                "2",
                "--pool",
                "prefork",
                "-n",
                f"bench-{target}@%h",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
                *extra,
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ready_at: float | None = None
        self.done: list[float] = []
        self._offset = 0
        self._partial = b""

    def follow(self) -> None:
        """Read what the log gained since the last call."""
        with open(self.log_path, "rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            line = raw.decode(errors="replace")
            if (match := SUCCEEDED.match(line)) is not None:
                self.done.append(_stamp(match.group(1)))
            elif " raised unexpected" in line or "Unrecoverable error" in line:
                raise AssertionError(f"{self.log_path.name}: {line}")
            elif self.ready_at is None and (match := READY.match(line)) is not None:
                self.ready_at = _stamp(match.group(1))

    def wait(self, what: str, condition, timeout: float) -> None:
        def check() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited:\n{self.log_path.read_text()[-3000:]}")
            self.follow()
            return condition()

        wait_for(check, timeout=timeout, interval=0.05, message=what)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()
        self.log_path.unlink(missing_ok=True)


@dataclass
class Phase:
    """What one phase measured: ``tasks`` done in ``seconds``, with ``commands`` Redis calls
    per command name, and (worker phases) ``cpu``: CPU time per task in µs by process group
    (``redis``, ``main``: the worker's main process, ``pool``: its pool children)."""

    tasks: int
    seconds: float
    commands: Counter[str]
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Tasks per second (NaN for a phase that took no measurable time)."""
        return self.tasks / self.seconds if self.seconds > 0 else math.nan

    @property
    def per_task(self) -> float:
        return sum(self.commands.values()) / self.tasks


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far, in seconds (``/proc/<pid>/stat``,
    clock ticks: 10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a prefork worker's pool children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        if parent == pid:
            found.append(int(entry.name))
    return found


def command_stats(client: redis.Redis, skipped: frozenset[str] = SKIPPED_COMMANDS) -> Counter[str]:
    """Calls per command since the last ``CONFIG RESETSTAT``, subcommands counted under their
    command (``client|setname`` as ``client``), without the ``skipped`` ones (INFO/CONFIG)."""
    stats = client.info("commandstats")
    counts: Counter[str] = Counter()
    for name, values in stats.items():
        command = name.removeprefix("cmdstat_").split("|")[0]
        if command not in skipped:
            counts[command] += int(values["calls"])
    return counts


def measure_worker(
    target: str, server: RedisServer, tasks: int, log_dir: Path, prepare: Callable[[str], None]
) -> Phase:
    """One worker phase of :data:`WORKERS` ``target``: flush Redis, ``prepare(redis_url)``
    (queue ``tasks`` tasks, set what the phase needs), ``CONFIG RESETSTAT``, start the worker
    and time its ``ready.`` line to its ``tasks``-th ``succeeded`` line, both from its log
    (timeouts: 60 s to ready, 600 s to done; raises :class:`AssertionError` if the worker dies
    or logs a failed task). The CPU time of Redis, the worker's main process and its pool
    children is read when the worker is ready and when the last task is done (the second read
    follows the log by up to 50 ms of polling, a few tasks' worth at most)."""
    client = redis.Redis.from_url(server.url())
    client.flushall()
    prepare(server.url())
    client.config_resetstat()
    worker = WorkerRun(target, server.url(), log_dir)
    try:
        worker.wait("ready", lambda: worker.ready_at is not None, timeout=60)
        assert server.process is not None
        groups = {"redis": [server.process.pid], "main": [worker.process.pid],
                  "pool": child_pids(worker.process.pid)}
        before = {name: sum(map(cpu_seconds, pids)) for name, pids in groups.items()}
        worker.wait(f"{tasks} tasks", lambda: len(worker.done) >= tasks, timeout=600)
        after = {name: sum(map(cpu_seconds, pids)) for name, pids in groups.items()}
        commands = command_stats(client)
        assert worker.ready_at is not None
        cpu = {name: (after[name] - before[name]) / tasks * 1e6 for name in groups}
        return Phase(tasks, max(worker.done) - worker.ready_at, commands, cpu)
    finally:
        worker.stop()
        client.close()


@contextmanager
def log_folder(prefix: str) -> Iterator[Path]:
    """A temporary folder for worker logs, removed with what is left in it."""
    log_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield log_dir
    finally:
        for leftover in log_dir.glob("*"):
            leftover.unlink()
        log_dir.rmdir()


def alternate(
    targets: list[str] | tuple[str, ...], rounds: int, phase: Callable[[str], Phase]
) -> dict[str, list[Phase]]:
    """``rounds`` rounds of ``phase(target)`` for each target in turn, printing each result
    (``round N target: R tasks/s, C commands/task``); the phases per target, in round order."""
    results: dict[str, list[Phase]] = {t: [] for t in targets}
    for number in range(1, rounds + 1):
        for target in targets:
            measured = phase(target)
            results[target].append(measured)
            print(
                f"round {number} {target}: {measured.rate:.0f} tasks/s, "
                f"{measured.per_task:.1f} commands/task",
                flush=True,
            )
    return results


def round_ratios(rounds: dict[str, list[Phase]], top: str, bottom: str) -> list[float]:
    """Throughput of ``top`` over ``bottom``, round by round."""
    return [a.rate / b.rate for a, b in zip(rounds[top], rounds[bottom], strict=True)]


def print_ratio(label: str, medians: dict[str, Phase], rounds: dict[str, list[Phase]],
                top: str, bottom: str, digits: int = 2) -> None:
    """Print ``label: <ratio of medians>; per round r1, r2, …`` (``top`` over ``bottom``)."""
    ratio = medians[top].rate / medians[bottom].rate
    print(
        f"\n{label}: {ratio:.{digits}f}; per round "
        + ", ".join(f"{p:.{digits}f}" for p in round_ratios(rounds, top, bottom))
    )


def median_phase(phases: list[Phase]) -> Phase:
    """The median round by throughput (the lower middle one for an even count)."""
    ordered = sorted(phases, key=lambda p: p.rate)
    return ordered[(len(ordered) - 1) // 2]


def _top(commands: Counter[str], tasks: int) -> str:
    return ", ".join(
        f"{name.upper()} {count / tasks:.1f}" for name, count in commands.most_common(12)
    )


def report(title: str, rounds: dict[str, list[Phase]]) -> dict[str, Phase]:
    """Print ``title`` and a table of each target's median round (throughput, every round's,
    commands per task, the twelve most frequent commands); the medians per target."""
    medians = {name: median_phase(phases) for name, phases in rounds.items()}
    print(f"\n{title}\n")
    print("| target | tasks/s (median) | rounds | Redis commands per task | most frequent |")
    print("|---|---:|---|---:|---|")
    for name, phase in medians.items():
        each = " / ".join(f"{p.rate:.0f}" for p in rounds[name])
        print(
            f"| {name} | {phase.rate:.0f} | {each} | {phase.per_task:.1f} | "
            f"{_top(phase.commands, phase.tasks)} |"
        )
    if any(phase.cpu for phase in medians.values()):
        print("\nCPU per task in the median round, µs (Redis / worker main process / pool):")
        for name, phase in medians.items():
            if phase.cpu:
                print(f"  {name}: " + " / ".join(f"{phase.cpu[group]:.0f}"
                                                   for group in ("redis", "main", "pool")))
    return medians
