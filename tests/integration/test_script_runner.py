"""The script runner's function library (:mod:`celery_app.scripts`): named by its code, loaded
once by however many processes at once, beside an earlier release's library, and never
inside a pipeline. Each test has a redis-server of its own (functions are server-wide)."""

from __future__ import annotations

import re
import threading

import pytest
import redis

from celery_app import scripts
from tests.service import function_libraries, private_env, require_functions


@pytest.fixture
def own(tmp_path):
    with private_env(tmp_path) as environment:
        require_functions(environment.redis)
        yield environment


def _library_names(client: redis.Redis) -> list[str]:
    return sorted(library["library_name"] for library in function_libraries(client))


def test_the_library_is_named_by_a_digest_of_its_code():
    name, code = scripts.library_code()
    assert re.fullmatch(r"tq_[0-9a-f]{12}", name)
    assert code.startswith(f"#!lua name={name}\n")
    assert scripts.library_code() == (name, code)  # the same code, the same name
    for function in scripts.FUNCTIONS:
        assert f"redis.register_function('{name}_{function}'" in code


def test_processes_loading_the_library_at_once_all_succeed_and_it_is_loaded_once(own):
    clients = [redis.Redis.from_url(own.url, decode_responses=True) for _ in range(8)]
    libraries = [scripts.Library(client) for client in clients]
    barrier = threading.Barrier(len(libraries))
    errors: list[BaseException] = []

    def load(library: scripts.Library) -> None:
        barrier.wait()
        try:
            library.load()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(lib,)) for lib in libraries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert _library_names(own.redis) == [libraries[0].name]
    for client in clients:
        client.close()


def test_an_earlier_releases_library_stays_beside_this_one_and_each_answers_its_callers(own):
    earlier = "tq_000000000000"
    own.redis.function_load(
        f"#!lua name={earlier}\n"
        f"redis.register_function('{earlier}_claim', function() return 'earlier' end)\n"
    )
    task = own.submit(type="echo", payload={"n": 1})
    own.worker(worker_heartbeat_seconds=0.5)
    assert own.wait_state(task["id"], "completed")["result"] == {"n": 1}
    name, _ = scripts.library_code()
    assert _library_names(own.redis) == sorted([earlier, name])
    assert own.redis.fcall(f"{earlier}_claim", 0) == "earlier"


def test_a_function_is_never_queued_in_a_pipeline(own):
    runner = own.app.extensions["taskqueue"].celery.runtime.scripts
    with pytest.raises(ValueError, match="runs as a function"):
        runner.run("claim", ["tq:task:x"], "x", "", "w@h", 1000,
                   client=own.redis.pipeline())
