"""``Env``: one Redis database seen through the service — the Flask app, a Redis client and
the workers a test starts — with the helpers tests read as sentences."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from celery_app.settings import Settings
from tests.harness import RedisServer, Worker, wait_for


def metric_samples(text: str) -> dict[tuple, float]:
    """The ``taskqueue_*`` samples of a ``/metrics`` scrape: ``(sample name, sorted label
    pairs)`` → value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("taskqueue_")
        for sample in family.samples
    }


class Env:
    """The service on one database of the test Redis."""

    def __init__(self, server: RedisServer, db: int, tmp_path: Path, url: str | None = None,
                 **settings: Any) -> None:
        self.server = server
        self.url = url or server.url(db)  # ``url``: e.g. with an ACL user of the server
        self.tmp_path = tmp_path
        self.settings = Settings(redis_url=self.url, upload_dir=str(tmp_path / "uploads"),
                                 **settings)
        self.app = create_app(self.settings)
        self.client = self.app.test_client()
        self.redis = redis.Redis.from_url(self.url, decode_responses=True)
        self.workers: list[Worker] = []

    def worker(self, name: str = "w", *, start: bool = True, **options: Any) -> Worker:
        """A worker process on this database (stopped when the test ends)."""
        options.setdefault("upload_dir", self.settings.upload_dir)
        worker = Worker(self.url, f"{name}{len(self.workers)}", log_dir=self.tmp_path, **options)
        self.workers.append(worker)
        return worker.start() if start else worker

    def submit(self, expect: int = 201, headers: dict | None = None, **body: Any) -> dict:
        """POST a task; assert the status; return the body."""
        response = self.client.post("/api/v1/tasks", json=body, headers=headers or {})
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def get(self, task_id: str) -> dict:
        """The envelope (asserting it exists)."""
        response = self.client.get(f"/api/v1/tasks/{task_id}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def wait_state(self, task_id: str, *states: str, timeout: float = 15) -> dict:
        """Wait until the task is in one of ``states``; return its envelope."""
        def reached() -> dict | None:
            envelope = self.get(task_id)
            return envelope if envelope["state"] in states else None

        return wait_for(reached, timeout=timeout, message=f"{task_id} to reach {states}")

    def started_order(self, task_ids: list[str]) -> list[str]:
        """The tasks in the order they started, read from the event stream (whose ids are
        strictly ordered, unlike millisecond timestamps). Waits for each to complete."""
        for task_id in task_ids:
            self.wait_state(task_id, "completed")
        wanted = set(task_ids)
        order = []
        for _, fields in self.redis.xrange("tq:events"):
            data = json.loads(fields["data"])
            if fields["type"] == "task.started" and data.get("task_id") in wanted:
                order.append(data["task_id"])
        return order

    def queue_empty(self) -> bool:
        """No message waiting in any queue and none delivered but unacknowledged."""
        waiting = sum(self.redis.llen(q) for q in ("critical", "high", "normal", "low"))
        return waiting == 0 and self.redis.hlen("unacked") == 0

    @contextmanager
    def round_trips(self) -> Iterator[list[bytes]]:
        """What the app's Redis client sends meanwhile, one item per round trip (one packed
        write: a command, or a whole pipeline). Connect and load scripts before counting."""
        client = self.app.extensions["taskqueue"].celery.runtime.redis
        sent: list[bytes] = []
        connection = client.connection_pool.get_connection()
        client.connection_pool.release(connection)
        cls = type(connection)
        original = cls.send_packed_command

        def counting(conn, command, check_health=True):
            sent.append(command)
            return original(conn, command, check_health)

        cls.send_packed_command = counting
        try:
            yield sent
        finally:
            cls.send_packed_command = original

    def close(self, flush: bool) -> None:
        for worker in self.workers:
            worker.stop()
        if flush:
            self.redis.flushdb()
        self.redis.close()


@contextmanager
def private_env(tmp_path: Path, binary: str | None = None, **settings: Any) -> Iterator[Env]:
    """The service on a redis-server of its own (``binary``: default
    :func:`tests.harness.redis_server_binary`), for tests that change what is server-wide
    (``maxmemory``, ``REPLICAOF``, functions) or need another Redis version; both stopped after."""
    server = RedisServer(binary=binary).start()
    environment = Env(server, 0, tmp_path, **settings)
    try:
        yield environment
    finally:
        environment.close(flush=False)
        server.stop()


def require_functions(client: redis.Redis) -> None:
    """Skip the test on a redis-server without functions (before Redis 7)."""
    if int(client.info("server")["redis_version"].split(".")[0]) < 7:
        pytest.skip("this redis-server has no functions (Redis < 7)")


def function_libraries(client: redis.Redis) -> list[dict[str, Any]]:
    """``FUNCTION LIST`` (RESP2: lists of name/value pairs) as dicts, each function too."""
    def pairs(flat: list) -> dict[str, Any]:
        return dict(zip(flat[::2], flat[1::2], strict=True))

    libraries = [pairs(library) for library in client.function_list()]
    for library in libraries:
        library["functions"] = [pairs(function) for function in library["functions"]]
    return libraries
