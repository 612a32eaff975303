"""Failover drills with real processes: Redis Sentinel (one master, two replicas, three
sentinels), a Celery worker and the gunicorn web process, all found through Sentinel."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import Counter

import pytest
import requests
from simple_websocket import Client, ConnectionClosed

from tests.harness import RedisServer, SentinelCluster, WebServer, Worker, wait_for
from tests.service import Env

pytestmark = pytest.mark.drill

#: The contract's bound: healthy again this long after the master's death (down-after 1000 ms).
HEAL_SECONDS = 15
REDIS_DOWN = {"error": "Service Unavailable"}


class Frames:
    """A ``/ws`` client that collects frames on its own thread."""

    def __init__(self, url: str) -> None:
        import threading

        self.client = Client.connect(url)
        self.frames: list[dict] = []
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                self.frames.append(json.loads(self.client.receive()))
        except ConnectionClosed:
            self.closed = True

    def completed(self) -> set[str]:
        return {f["data"]["task_id"] for f in list(self.frames) if f["type"] == "task.completed"}


@pytest.fixture
def cluster():
    running = SentinelCluster().start()
    yield running
    running.stop()


def _submit(web: WebServer, key: str) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = requests.post(
        f"{web.url}/api/v1/tasks",
        json={"type": "echo", "payload": {}},
        headers={"Idempotency-Key": key},
        timeout=5,
    )
    return response.status_code, response.json(), time.monotonic() - started


def test_master_killed_under_submit_loop_loses_no_accepted_task(cluster, tmp_path):
    ha = {
        "redis_sentinels": cluster.addresses,
        "redis_sentinel_master": cluster.master_name,
        "redis_min_replicas": 1,
        "redis_wait_timeout_ms": 500,
    }
    url = cluster.master.url(0)  # only its database number counts under Sentinel
    # A message lost between kombu's BRPOP and its unacked write is re-published after the grace.
    worker = Worker(url, "drill", log_dir=tmp_path, lost_message_grace_seconds=3, **ha).start()
    web = WebServer(url, workers=1, threads=8, log_path=tmp_path / "web.log", **ha).start()
    try:
        listener = Frames(web.url.replace("http://", "ws://") + "/ws?types=task.completed")
        accepted: dict[str, str] = {}  # Idempotency-Key -> task id, for every 201
        refused: list[str] = []  # keys answered 503
        answers: list[tuple[int, float]] = []
        killed_at = healed_at = None
        after_heal = 0
        deadline = time.monotonic() + 60
        while after_heal < 30 and time.monotonic() < deadline:
            key = str(uuid.uuid4())
            status, body, elapsed = _submit(web, key)
            answers.append((status, elapsed))
            if status == 201:
                accepted[key] = body["id"]
                if killed_at is not None:
                    healed_at = healed_at or time.monotonic()
                    after_heal += 1
            else:
                assert status == 503 and body["error"] == REDIS_DOWN["error"], body
                refused.append(key)
            if killed_at is None and len(accepted) == 30:
                cluster.master.kill()
                killed_at = time.monotonic()
            time.sleep(0.02)  # pacing the load generator (about 50 submits a second)

        assert killed_at is not None and healed_at is not None, "never healed"
        heal_seconds = healed_at - killed_at
        print(
            f"\nfailover drill: healed in {heal_seconds:.2f} s, {len(refused)} answers 503, "
            f"{len(accepted)} accepted, slowest answer {max(e for _, e in answers):.2f} s"
        )
        assert heal_seconds < HEAL_SECONDS
        assert max(elapsed for _, elapsed in answers) < 3.0, "a request hung"
        new_master = wait_for(cluster.master_port, message="sentinels to agree")
        assert new_master != cluster.master.port

        # A retry of every refused submit with its key is safe: one task per key, at most.
        for key in refused:
            status, body, _ = _submit(web, key)
            assert status in (200, 201), body
            assert accepted.setdefault(key, body["id"]) == body["id"]

        db = cluster.node(new_master).url(0)
        import redis

        check = redis.Redis.from_url(db, decode_responses=True)
        try:

            def all_completed() -> bool:
                pending.clear()
                for task_id in accepted.values():
                    state = check.hget(f"tq:task:{task_id}", "state")
                    if state != "completed":
                        pending[task_id] = state
                return not pending

            pending: dict[str, str | None] = {}
            try:
                wait_for(all_completed, timeout=30, interval=0.2, message="every task to complete")
            except AssertionError:
                log = worker.log_path.read_text()[-4000:]
                raise AssertionError(f"not completed: {pending}\nworker log:\n{log}") from None
            completion_ids = [  # (event id, task id) of every completion on the new master
                (event_id, json.loads(fields["data"])["task_id"])
                for event_id, fields in check.xrange("tq:events")
                if fields["type"] == "task.completed"
            ]
            completions = Counter(task_id for _, task_id in completion_ids)
            assert {completions.get(t) for t in accepted.values()} == {1}, "completed twice"
        finally:
            check.close()
        # The /ws client stayed connected and got every completion, before and after.
        try:
            wait_for(
                lambda: listener.completed() >= set(accepted.values()),
                timeout=10,
                message="/ws to deliver every completion",
            )
        except AssertionError:
            missing = set(accepted.values()) - listener.completed()
            last = listener.frames[-1]["id"] if listener.frames else None
            hub_lines = [line for line in web.log_path.read_text().splitlines()
                         if "hub" in line or "Traceback" in line or "Exception in" in line]
            raise AssertionError(
                f"/ws missed {len(missing)} of {len(accepted)} completions "
                f"(their events on the new master: "
                f"{sorted(e for e, task_id in completion_ids if task_id in missing)}); "
                f"{len(listener.frames)} frames, the last {last}; socket closed: "
                f"{listener.closed}\nweb log (hub, tracebacks):\n" + "\n".join(hub_lines[-40:])
            ) from None
        assert not listener.closed
        listener.client.close()
    finally:
        web.stop()
        worker.stop()


@pytest.mark.parametrize(("outage", "task_seconds"), [("stopped", 18), ("restarted", 4)])
def test_worker_losing_redis_for_ten_seconds_mid_task_completes_it_once(
    outage, task_seconds, tmp_path
):
    # "stopped": SIGSTOP, every socket hangs; the task outlives the outage by more than its
    # lease's TTL, so the reaper sees it running afterwards. "restarted": SIGKILL, down, then
    # started again from its append-only file — connections reset while the worker holds the
    # task's message.
    server = RedisServer(args=("--appendonly", "yes", "--appendfsync", "always")).start()
    env = Env(server, 0, tmp_path)
    try:
        env.worker()
        task = env.submit(type="sleep", payload={"seconds": task_seconds})
        env.wait_state(task["id"], "running")
        if outage == "stopped":
            server.process.send_signal(signal.SIGSTOP)
        else:
            server.kill()
        try:
            time.sleep(10)  # the outage being drilled, not a wait for a condition
        finally:
            if outage == "stopped":
                server.process.send_signal(signal.SIGCONT)
            else:
                server.start()
        done = env.wait_state(task["id"], "completed", timeout=40)
        assert done["attempts"] == 1 and done["result"]["slept"] >= task_seconds
        started = [
            json.loads(f["data"])["task_id"]
            for _, f in env.redis.xrange("tq:events")
            if f["type"] == "task.started"
        ]
        assert started.count(task["id"]) == 1, "the task ran twice"
        assert env.workers[0].process.poll() is None, "the worker died"
        follow_up = env.submit(type="echo", payload={"after": outage})
        assert env.wait_state(follow_up["id"], "completed")["result"] == {"after": outage}
    finally:
        env.close(flush=False)
        server.stop()
