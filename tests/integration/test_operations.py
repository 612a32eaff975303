"""Operating the service: the worker registry, pause/resume, queue depths, health."""

from __future__ import annotations

import json
import time

from tests.harness import Worker, wait_for


def _worker_events(env, kind: str, hostname: str) -> list[dict]:
    return [json.loads(f["data"]) for _, f in env.redis.xrange("tq:events")
            if f["type"] == kind and json.loads(f["data"]).get("worker_id") == hostname]


def _listed(env) -> dict[str, dict]:
    body = env.client.get("/admin/workers").get_json()
    assert body["count"] == len(body["workers"])
    return {w["id"]: w for w in body["workers"]}


def test_each_worker_is_listed_from_its_own_heartbeat_record(env):
    worker = env.worker(queues="critical,high", concurrency=2)
    record = _listed(env)[worker.hostname]
    assert record["state"] == "idle" and record["active_tasks"] == 0
    assert record["concurrency"] == 2 and record["queues"] == ["critical", "high"]
    assert record["started_at"] <= record["last_heartbeat"]
    assert set(record) == {"id", "state", "started_at", "last_heartbeat", "active_tasks",
                           "concurrency", "queues"}
    assert _worker_events(env, "worker.joined", worker.hostname)

    task = env.submit(type="sleep", payload={"seconds": 3}, priority="high")
    env.wait_state(task["id"], "running")
    busy = wait_for(lambda: _listed(env)[worker.hostname]["state"] == "busy" and
                    _listed(env)[worker.hostname], message="busy heartbeat")
    assert busy["active_tasks"] == 1
    assert env.client.get("/admin/health").get_json()["workers"] == 1


def test_a_killed_worker_leaves_the_list_within_three_heartbeats(env):
    doomed = env.worker("doomed", worker_heartbeat_seconds=0.5)
    watcher = env.worker("watcher", worker_heartbeat_seconds=0.5)
    assert set(_listed(env)) == {doomed.hostname, watcher.hostname}
    doomed.kill()
    killed_at = time.monotonic()
    wait_for(lambda: doomed.hostname not in _listed(env), timeout=5, message="expiry")
    assert time.monotonic() - killed_at <= 3 * 0.5 + 0.5
    wait_for(lambda: _worker_events(env, "worker.left", doomed.hostname), timeout=5,
             message="worker.left")
    assert _worker_events(env, "worker.left", doomed.hostname)[0]["reason"] == "heartbeat expired"
    assert len(_worker_events(env, "worker.left", doomed.hostname)) == 1


def test_a_stopped_worker_leaves_at_once_with_one_worker_left_event(env):
    worker = env.worker()
    worker.stop()
    assert worker.hostname not in _listed(env)
    assert [e["reason"] for e in _worker_events(env, "worker.left", worker.hostname)] == [
        "shutdown"]


def test_pause_holds_tasks_and_resume_runs_them_critical_first(env):
    worker = env.worker(concurrency=1)
    paused = env.client.post(f"/admin/workers/{worker.hostname}/pause")
    assert paused.status_code == 200 and paused.get_json()["state"] == "paused"
    wait_for(lambda: _worker_events(env, "worker.paused", worker.hostname), message="applied")

    ids = {p: env.submit(type="echo", priority=p)["id"]
           for p in ("low", "normal", "high", "critical")}
    queues = env.client.get("/admin/queues").get_json()
    assert queues == {"queues": {"critical": {"depth": 1, "priority": 3, "paused": False},
                                 "high": {"depth": 1, "priority": 2, "paused": False},
                                 "normal": {"depth": 1, "priority": 1, "paused": False},
                                 "low": {"depth": 1, "priority": 0, "paused": False}},
                      "total_depth": 4}
    beats = {_listed(env)[worker.hostname]["last_heartbeat"]}
    wait_for(lambda: beats.add(_listed(env)[worker.hostname]["last_heartbeat"]) or len(beats) > 2,
             message="two more heartbeats while paused")
    assert all(env.get(i)["state"] == "pending" for i in ids.values())
    assert _listed(env)[worker.hostname]["state"] == "paused"

    resumed = env.client.post(f"/admin/workers/{worker.hostname}/resume")
    assert resumed.status_code == 200 and resumed.get_json()["state"] in ("idle", "busy")
    priority_of = {task_id: p for p, task_id in ids.items()}
    order = [priority_of[i] for i in env.started_order(list(ids.values()))]
    assert order == ["critical", "high", "normal", "low"]
    assert _worker_events(env, "worker.resumed", worker.hostname)


def test_a_paused_worker_that_restarts_stays_paused(env, tmp_path):
    first = env.worker("sticky", concurrency=1)
    assert env.client.post(f"/admin/workers/{first.hostname}/pause").status_code == 200
    assert _worker_events(env, "worker.paused", first.hostname)
    first.stop()

    again = Worker(env.url, first.hostname.split("@")[0], concurrency=1, log_dir=tmp_path)
    env.workers.append(again)
    again.start()
    task = env.submit(type="echo")
    wait_for(lambda: len(_worker_events(env, "worker.paused", first.hostname)) == 2,
             message="pause re-applied at start")
    assert _listed(env)[again.hostname]["state"] == "paused"
    beats = {_listed(env)[again.hostname]["last_heartbeat"]}
    wait_for(lambda: beats.add(_listed(env)[again.hostname]["last_heartbeat"]) or len(beats) > 1,
             message="a heartbeat of the restarted worker")
    assert env.get(task["id"])["state"] == "pending"
    assert env.client.post(f"/admin/workers/{again.hostname}/resume").status_code == 200
    assert env.wait_state(task["id"], "completed")["worker_id"] == again.hostname


def test_unknown_worker_is_404(env):
    for action in ("pause", "resume"):
        response = env.client.post(f"/admin/workers/nobody@nowhere/{action}")
        assert response.status_code == 404
        assert response.get_json() == {"error": "Not Found", "message": "worker not found"}
