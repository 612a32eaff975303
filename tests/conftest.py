"""Fixtures shared by every test: composable, from a private Redis up to a live service.

- ``redis_server``: one private redis-server for the session (64 databases).
- ``live``: database 0 with one shared worker (all queues, -c 2) — for tests that only need
  tasks to run.
- ``env``: a fresh database of its own and no worker; the test starts the workers it needs
  (``env.worker(...)``), which are stopped when it ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import RedisServer, Worker
from tests.service import Env

#: Databases free for ``env`` (0 belongs to ``live``); each is flushed before it is reused.
_free_databases = list(range(1, 64))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_worker(redis_server: RedisServer, tmp_path_factory) -> Iterator[Worker]:
    worker = Worker(redis_server.url(0), "shared", log_dir=tmp_path_factory.mktemp("logs"))
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def live(redis_server: RedisServer, shared_worker: Worker, tmp_path) -> Iterator[Env]:
    environment = Env(redis_server, 0, tmp_path)
    yield environment
    environment.close(flush=False)


@pytest.fixture
def env(redis_server: RedisServer, tmp_path) -> Iterator[Env]:
    db = _free_databases.pop(0)
    environment = Env(redis_server, db, tmp_path)
    try:
        yield environment
    finally:
        environment.close(flush=True)  # stops its workers first
        _free_databases.append(db)
