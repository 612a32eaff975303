"""Batch submit (``POST /api/v1/tasks/batch``): request order, all or nothing, a bounded number
of Redis round trips, and one ``Idempotency-Key`` for the whole batch."""

from __future__ import annotations

BATCH = "/api/v1/tasks/batch"


def _task_keys(env) -> list[str]:
    return list(env.redis.scan_iter("tq:task:*"))


def _waiting(env) -> int:
    return sum(env.redis.llen(queue) for queue in ("critical", "high", "normal", "low"))


def test_a_batch_creates_every_task_in_request_order_and_each_runs(live):
    items = [{"type": "echo", "payload": {"n": n}, "priority": n % 4} for n in range(6)]
    response = live.client.post(BATCH, json={"tasks": items})

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["count"] == 6
    assert [task["payload"] for task in body["tasks"]] == [{"n": n} for n in range(6)]
    assert [task["priority"] for task in body["tasks"]] == ["low", "normal", "high",
                                                           "critical", "low", "normal"]
    assert {task["state"] for task in body["tasks"]} == {"pending"}
    for n, task in enumerate(body["tasks"]):
        assert live.wait_state(task["id"], "completed")["result"] == {"n": n}


def test_one_invalid_item_is_a_400_naming_it_and_nothing_is_created(env):
    good = {"type": "echo", "payload": {}}
    cases = {
        "tasks.2.priority": [good, good, {"type": "echo", "priority": "urgent"}],
        "tasks.0.type": [{"type": "no-such-handler"}, good],
        "tasks.1.payload.seconds": [good, {"type": "sleep", "payload": {"seconds": 1e308}}],
        "tasks.3.bogus": [good, good, good, {"type": "echo", "bogus": 1}],
        "tasks.1.scheduled_at": [good, {"type": "echo", "scheduled_at": "yesterday"}],
    }
    for name, items in cases.items():
        response = env.client.post(BATCH, json={"tasks": items})
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["message"].startswith(name + ":"), response.get_json()
    assert _task_keys(env) == [] and _waiting(env) == 0
    assert env.redis.xlen("tq:events") == 0


def test_a_batch_holds_one_to_a_thousand_tasks(env):
    for items in ([], [{"type": "echo"}] * 1001):
        response = env.client.post(BATCH, json={"tasks": items})
        assert response.status_code == 400
        assert response.get_json()["message"].startswith("tasks: ")
    for body in ({}, {"tasks": {"type": "echo"}}, {"tasks": [{"type": "echo"}], "more": 1}):
        assert env.client.post(BATCH, json=body).status_code == 400
    assert _task_keys(env) == []


def test_a_thousand_tasks_cost_as_many_round_trips_as_ten(env):
    env.client.post(BATCH, json={"tasks": [{"type": "echo"}]})  # scripts loaded, connected
    counts = {}
    for size in (10, 1000):
        items = [{"type": "echo", "payload": {"i": i}} for i in range(size)]
        with env.round_trips() as sent:
            response = env.client.post(BATCH, json={"tasks": items})
        assert response.status_code == 201
        counts[size] = len(sent)
    assert counts[10] == counts[1000] == 2  # SCRIPT EXISTS, then MULTI … EXEC
    assert len(_task_keys(env)) == 1011 and _waiting(env) == 1011


def test_an_idempotency_key_covers_the_whole_batch(env):
    items = [{"type": "echo", "payload": {"i": i}} for i in range(3)]
    headers = {"Idempotency-Key": "batch-1"}
    first = env.client.post(BATCH, json={"tasks": items}, headers=headers)
    again = env.client.post(BATCH, json={"tasks": items}, headers=headers)
    other = env.client.post(BATCH, json={"tasks": items[:2]}, headers=headers)

    assert first.status_code == 201 and again.status_code == 200
    assert [t["id"] for t in again.get_json()["tasks"]] == [t["id"] for t in
                                                          first.get_json()["tasks"]]
    assert other.status_code == 422 and "batch-1" in other.get_json()["message"]
    assert len(_task_keys(env)) == 3 and _waiting(env) == 3
    with env.round_trips() as sent:
        env.client.post(BATCH, json={"tasks": items}, headers={"Idempotency-Key": "batch-2"})
    assert len(sent) == 4  # WATCH, GET, SCRIPT EXISTS, MULTI … EXEC


def test_a_scheduled_item_waits_while_the_rest_of_its_batch_is_queued(env):
    items = [{"type": "echo"}, {"type": "echo", "scheduled_at": "2999-01-01T00:00:00Z"}]
    tasks = env.client.post(BATCH, json={"tasks": items}).get_json()["tasks"]
    assert [t["state"] for t in tasks] == ["pending", "scheduled"]
    assert _waiting(env) == 1 and env.redis.zcard("tq:delayed") == 1
