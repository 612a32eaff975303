"""/metrics reports cluster-wide values: work done in workers, the same from every web process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import WebServer, wait_for
from tests.service import metric_samples


def _by_pid(text: str, sample_name: str) -> dict[str, float]:
    return {
        sample.labels["pid"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == sample_name
    }


def _samples(env) -> dict[tuple, float]:
    return metric_samples(env.client.get("/metrics").get_data(as_text=True))


def _redis_seconds(env) -> float:
    seconds, micros = env.redis.time()
    return seconds + micros / 1e6


@pytest.fixture
def web_pair(env):
    servers = [WebServer(env.url, workers=2, threads=4) for _ in range(2)]
    try:
        yield [server.start() for server in servers]
    finally:
        for server in servers:
            server.stop()


def test_metrics_count_what_was_done_identically_from_every_web_process(env, web_pair):
    env.worker()
    done = [env.submit(type="echo", priority="normal")["id"] for _ in range(3)]
    failed = env.submit(type="fail", max_retries=0)["id"]
    later = env.submit(type="echo",
                       scheduled_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())["id"]
    assert env.client.delete(f"/api/v1/tasks/{later}").status_code == 200
    for task_id in done:
        env.wait_state(task_id, "completed")
    env.wait_state(failed, "dead_letter")

    scrapes = [requests.get(f"{server.url}/metrics", timeout=5).text
               for server in web_pair for _ in range(4)]  # 4 scrapes spread over 2 processes
    views = [metric_samples(text) for text in scrapes]
    assert all(view == views[0] for view in views), "web processes disagree"
    metrics = views[0]

    def value(name: str, **labels: str) -> float:
        return metrics[(name, tuple(sorted(labels.items())))]

    assert value("taskqueue_tasks_submitted_total", type="echo", priority="normal") == 3
    assert value("taskqueue_tasks_submitted_total", type="echo", priority="low") == 1
    assert value("taskqueue_tasks_submitted_total", type="fail", priority="low") == 1
    assert value("taskqueue_tasks_completed_total", type="echo", status="completed") == 3
    assert value("taskqueue_tasks_completed_total", type="echo", status="cancelled") == 1
    assert value("taskqueue_tasks_completed_total", type="fail", status="dead_letter") == 1
    assert value("taskqueue_task_duration_seconds_count", type="echo") == 3
    assert value("taskqueue_task_duration_seconds_bucket", type="echo", le="+Inf") == 3
    assert value("taskqueue_task_duration_seconds_count", type="fail") == 1
    assert 0 < value("taskqueue_task_duration_seconds_sum", type="echo") < 3
    assert value("taskqueue_dlq_size") == 1
    assert value("taskqueue_active_workers") == 1
    assert all(value("taskqueue_queue_depth", priority=p) == 0
               for p in ("critical", "high", "normal", "low"))
    assert "flask_http_request_total" in scrapes[0]

    # process_* of every web process of the answering gunicorn, whichever worker answered.
    for server, texts in ((web_pair[0], scrapes[:4]), (web_pair[1], scrapes[4:])):
        master = server.process.pid
        workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        assert len(workers) == 2
        for text in texts:
            memory = _by_pid(text, "process_resident_memory_bytes")
            assert set(memory) == {str(master), *workers}
            assert all(value > 10_000_000 for value in memory.values())  # a Python process
            assert set(_by_pid(text, "process_cpu_seconds_total")) == set(memory)
            assert set(_by_pid(text, "process_open_fds")) == set(memory)
            assert "python_info{" in text
            # garbage-collector counts of the workers (each copies its own), by generation
            collections = [
                sample
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "python_gc_collections_total"
            ]
            assert {s.labels["pid"] for s in collections} <= set(workers)
            assert {s.labels["generation"] for s in collections} == {"0", "1", "2"}
            assert any(s.labels["generation"] == "0" and s.value > 0 for s in collections)
            uncollectable = [  # usually zero: a zero is still a sample of each generation
                sample
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "python_gc_objects_uncollectable_total"
            ]
            assert {s.labels["generation"] for s in uncollectable} == {"0", "1", "2"}


def test_queue_depth_metric_follows_waiting_messages(env):
    env.submit(type="echo", priority="critical")
    env.submit(type="echo", priority="critical")
    metrics = metric_samples(env.client.get("/metrics").get_data(as_text=True))
    assert metrics[("taskqueue_queue_depth", (("priority", "critical"),))] == 2
    assert metrics[("taskqueue_active_workers", ())] == 0


def test_retries_queue_wait_and_oldest_age_are_measured(env):
    echoes = [env.submit(type="echo", payload={"n": n})["id"] for n in range(2)]
    failing = env.submit(type="fail", priority="high", max_retries=2)["id"]
    queued_at = _redis_seconds(env)
    wait_for(lambda: _redis_seconds(env) >= queued_at + 1.0, message="a second of waiting")
    waiting = _samples(env)
    low_age = waiting[("taskqueue_queue_oldest_age_seconds", (("priority", "low"),))]
    high_age = waiting[("taskqueue_queue_oldest_age_seconds", (("priority", "high"),))]
    assert 1.0 <= high_age <= low_age < 60
    assert waiting[("taskqueue_queue_oldest_age_seconds", (("priority", "critical"),))] == 0

    env.worker(retry_backoff_seconds=0.1)
    for task_id in echoes:
        env.wait_state(task_id, "completed")
    env.wait_state(failing, "dead_letter", timeout=20)
    metrics = _samples(env)

    def value(name: str, **labels: str) -> float:
        return metrics.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("taskqueue_task_retries_total", type="fail") == 2
    assert value("taskqueue_task_retries_total", type="echo") == 0
    wait = "taskqueue_task_queue_wait_seconds"
    assert value(f"{wait}_count", type="echo", priority="low") == 2
    assert value(f"{wait}_bucket", type="echo", priority="low", le="0.5") == 0  # waited ≥ 1 s
    assert value(f"{wait}_bucket", type="echo", priority="low", le="+Inf") == 2
    assert 2.0 <= value(f"{wait}_sum", type="echo", priority="low") < 120
    assert value(f"{wait}_count", type="fail", priority="high") == 3  # every execution
    # the first waited ≥ 1 s from submit; each retry waits from its due time, not from submit
    assert value(f"{wait}_bucket", type="fail", priority="high", le="0.5") <= 2
    assert value(f"{wait}_sum", type="fail", priority="high") >= 1.0
    assert all(value("taskqueue_queue_oldest_age_seconds", priority=p) == 0
               for p in ("critical", "high", "normal", "low"))
