"""REDIS_MIN_REPLICAS: a submit answers 201 only once replicas hold the task, in one round trip;
503 otherwise, and a retry with the same Idempotency-Key is safe."""

from __future__ import annotations

import time

import pytest

from app import create_app
from celery_app.settings import Settings
from tests.harness import RedisServer, SentinelCluster, wait_for


@pytest.fixture
def master():
    server = RedisServer().start()
    yield server
    server.stop()


def _client(server: RedisServer, **settings):
    settings = Settings(redis_url=server.url(), redis_min_replicas=1, **settings)
    return create_app(settings)


def test_submit_without_enough_replicas_is_503_and_a_retry_with_its_key_is_safe(master):
    app = _client(master, redis_wait_timeout_ms=200)
    client = app.test_client()
    started = time.monotonic()
    refused = client.post(
        "/api/v1/tasks", json={"type": "echo"}, headers={"Idempotency-Key": "k-1"}
    )
    assert refused.status_code == 503
    assert time.monotonic() - started < 2.0
    body = refused.get_json()
    assert body["error"] == "Service Unavailable"
    assert "0 of 1 required replicas within 200 ms" in body["message"]
    assert "Idempotency-Key" in body["message"]
    assert (
        client.post(
            "/api/v1/tasks", json={"type": "echo"}, headers={"Idempotency-Key": "k-1"}
        ).status_code
        == 503
    )

    replica = RedisServer(args=("--replicaof", "127.0.0.1", str(master.port))).start()
    try:
        wait_for(lambda: SentinelCluster.acknowledging_replicas(master), message="replica acks")
        retried = client.post(
            "/api/v1/tasks", json={"type": "echo"}, headers={"Idempotency-Key": "k-1"}
        )
        assert retried.status_code == 200  # the first call's task, now held by the replica
        task_id = retried.get_json()["id"]
        assert len(app.extensions["taskqueue"].celery.runtime.redis.keys("tq:task:*")) == 1
        assert replica_has(replica, task_id)
        fresh = client.post(
            "/api/v1/tasks", json={"type": "echo"}, headers={"Idempotency-Key": "k-2"}
        )
        assert fresh.status_code == 201 and replica_has(replica, fresh.get_json()["id"])
    finally:
        replica.stop()


def replica_has(replica: RedisServer, task_id: str) -> bool:
    import redis

    client = redis.Redis(port=replica.port, decode_responses=True)
    try:
        return client.hget(f"tq:task:{task_id}", "state") == "pending"
    finally:
        client.close()


def test_acknowledged_submit_is_one_round_trip_and_survives_a_script_flush(master):
    replica = RedisServer(args=("--replicaof", "127.0.0.1", str(master.port))).start()
    try:
        wait_for(lambda: SentinelCluster.acknowledging_replicas(master), message="replica acks")
        app = _client(master)
        client = app.test_client()
        assert client.post("/api/v1/tasks", json={"type": "echo"}).status_code == 201
        store = app.extensions["taskqueue"].celery.runtime.store
        sent: list[bytes] = []
        connection = store.wait_client.connection_pool.get_connection()
        store.wait_client.connection_pool.release(connection)
        original = type(connection).send_packed_command

        def counting(self, command, check_health=True):
            sent.append(command)
            return original(self, command, check_health)

        type(connection).send_packed_command = counting
        try:
            for _ in range(5):
                assert client.post("/api/v1/tasks", json={"type": "echo"}).status_code == 201
        finally:
            type(connection).send_packed_command = original
        assert len(sent) == 5, "EVALSHA and WAIT must travel together"
        assert all(b"WAIT" in b"".join(c) if isinstance(c, list) else b"WAIT" in c for c in sent)

        store.redis.script_flush()  # what a new master after a failover looks like
        assert client.post("/api/v1/tasks", json={"type": "echo"}).status_code == 201
    finally:
        replica.stop()


def test_a_batch_waits_for_replicas_too_and_a_retry_with_its_key_is_safe(master):
    app = _client(master, redis_wait_timeout_ms=200)
    client = app.test_client()
    body = {"tasks": [{"type": "echo", "payload": {"i": i}} for i in range(3)]}
    headers = {"Idempotency-Key": "batch-k"}
    refused = client.post("/api/v1/tasks/batch", json=body, headers=headers)
    assert refused.status_code == 503
    assert "0 of 1 required replicas" in refused.get_json()["message"]

    replica = RedisServer(args=("--replicaof", "127.0.0.1", str(master.port))).start()
    try:
        wait_for(lambda: SentinelCluster.acknowledging_replicas(master), message="replica acks")
        retried = client.post("/api/v1/tasks/batch", json=body, headers=headers)
        assert retried.status_code == 200  # the first batch, now held by the replica
        ids = [task["id"] for task in retried.get_json()["tasks"]]
        assert len(app.extensions["taskqueue"].celery.runtime.redis.keys("tq:task:*")) == 3
        assert all(replica_has(replica, task_id) for task_id in ids)
        fresh = client.post("/api/v1/tasks/batch", json=body)
        assert fresh.status_code == 201
        assert all(replica_has(replica, t["id"]) for t in fresh.get_json()["tasks"])
    finally:
        replica.stop()
