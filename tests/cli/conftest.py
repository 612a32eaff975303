"""The installed ``taskqueue`` executable, run as a subprocess against a live service.

One stack serves every command-line test: a database of the session's private Redis, one
Celery worker and one gunicorn web process (real WebSockets). ``cli(...)`` runs the console
script beside this interpreter with its output piped, and asserts on every run that no escape
code and no traceback reached stdout or stderr.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.conftest import _free_databases
from tests.harness import ROOT, RedisServer, WebServer, Worker, wait_for

TASKQUEUE = str(Path(sys.executable).with_name("taskqueue"))
ESC = "\x1b"


def cli_env(url: str, **extra: str) -> dict[str, str]:
    """The caller's environment without anything that would change the CLI's choices, with
    ``PYTHONPATH`` set to this checkout: the console script imports the CLI under test, not the
    checkout the interpreter's editable install points at."""
    drop = ("TASKQUEUE_", "FORCE_COLOR", "NO_COLOR", "TTY_", "COLUMNS", "LINES", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(TASKQUEUE_URL=url, PYTHONPATH=str(ROOT), **extra)
    return env


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def assert_plain(text: str) -> None:
    """Piped output: no escape code, no traceback."""
    assert ESC not in text, text
    assert "Traceback" not in text, text


class Background:
    """A ``taskqueue`` process left running (``watch``, ``--wait``), its output collected."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._collect, args=(self.process.stdout, self.out)),
            threading.Thread(target=self._collect, args=(self.process.stderr, self.err)),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _collect(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_output(self, predicate: Callable[[list[str]], Any], timeout: float = 20) -> Any:
        """Wait until ``predicate(stdout lines)`` holds (failing if the process ended first)."""

        def holds() -> Any:
            result = predicate(list(self.out))
            if not result and self.process.poll() is not None:
                raise AssertionError(f"exited {self.process.returncode}: {self.out} {self.err}")
            return result

        return wait_for(holds, timeout=timeout, interval=0.05, message="taskqueue output")

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 30) -> Run:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for reader in self.readers:
                reader.join(5)
        run = Run(code, "\n".join(self.out), "\n".join(self.err))
        assert_plain(run.out + run.err)
        return run


class Cli:
    """``taskqueue`` against one service URL (with extra environment, e.g. credentials)."""

    def __init__(self, url: str, **env: str) -> None:
        self.url = url
        self.env = cli_env(url, **env)

    def __call__(
        self, *args: str, expect: int | None = 0, stdin: str | None = None, timeout: float = 60
    ) -> Run:
        proc = subprocess.run(
            [TASKQUEUE, *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=timeout,
        )
        run = Run(proc.returncode, proc.stdout, proc.stderr)
        assert_plain(run.out + run.err)
        if expect is not None:
            assert run.code == expect, (args, run)
        return run

    def start(self, *args: str) -> Background:
        return Background([TASKQUEUE, *args], self.env)

    def many(self, *commands: list[str]) -> list[Run]:
        """Several independent command lines at once (each checked like a single run)."""
        return [process.finish() for process in [self.start(*args) for args in commands]]


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)


def on_a_terminal(url: str, *args: str) -> tuple[subprocess.Popen, bytearray, int]:
    """``taskqueue`` on a pseudo-terminal (120x30): the process, its output as it comes, and
    the terminal's master side (to type into, and to close)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    env = cli_env(url, TERM="xterm-256color")
    process = subprocess.Popen(
        [TASKQUEUE, *args], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    output = bytearray()
    threading.Thread(target=_read_all, args=(master, output), daemon=True).start()
    return process, output, master


@dataclass
class Stack:
    redis_url: str
    redis: redis.Redis
    web: WebServer
    worker: Worker
    uploads: Path
    cli: Cli

    def api(self, method: str, path: str, **options: Any) -> requests.Response:
        """The API itself, for comparing with what the command printed."""
        return requests.request(method, self.web.url + path, timeout=10, **options)

    def wait_state(self, task_id: str, *states: str, timeout: float = 20) -> dict:
        def reached() -> dict | None:
            envelope = self.api("GET", f"/api/v1/tasks/{task_id}").json()
            return envelope if envelope.get("state") in states else None

        return wait_for(reached, timeout=timeout, message=f"{task_id} in {states}")

    def events_of(self, task_id: str) -> list[str]:
        """Ids of the stored events of one task, oldest first."""
        return [
            entry_id
            for entry_id, fields in self.redis.xrange("tq:events")
            if json.loads(fields["data"]).get("task_id") == task_id
        ]


@pytest.fixture(scope="package")
def stack(redis_server: RedisServer, tmp_path_factory) -> Iterator[Stack]:
    db = _free_databases.pop()
    url = redis_server.url(db)
    uploads = tmp_path_factory.mktemp("cli-uploads")
    logs = tmp_path_factory.mktemp("cli-logs")
    worker = Worker(url, "cli", upload_dir=uploads, log_dir=logs).start(wait=False)
    web = WebServer(url, workers=1, threads=16, upload_dir=uploads)
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        web.start()
        worker.wait_ready()
        yield Stack(url, client, web, worker, uploads, Cli(web.url))
    finally:
        web.stop()
        worker.stop()
        client.flushdb()
        client.close()
        _free_databases.append(db)
