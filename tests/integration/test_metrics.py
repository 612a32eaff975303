"""/metrics reports cluster-wide values: work done in workers, the same from every web process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import WebServer


def _task_samples(text: str) -> dict[tuple, float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("taskqueue_"):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


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
    views = [_task_samples(text) for text in scrapes]
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


def test_queue_depth_metric_follows_waiting_messages(env):
    env.submit(type="echo", priority="critical")
    env.submit(type="echo", priority="critical")
    metrics = _task_samples(env.client.get("/metrics").get_data(as_text=True))
    assert metrics[("taskqueue_queue_depth", (("priority", "critical"),))] == 2
    assert metrics[("taskqueue_active_workers", ())] == 0
