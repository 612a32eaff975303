"""The audit log: one entry per mutation, with its actor, written with the change or not at all."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token

from app import create_app

FAR = "2099-01-01T00:00:00Z"
SECRET = "s" * 40
ADMIN_KEY, USER_KEY = "admin-key-0123", "user-key-4567"


def audit(env, client=None, **query) -> list[dict]:
    response = (client or env.client).get("/admin/audit", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["entries"]


def later(env) -> dict:
    return env.submit(type="echo", scheduled_at=FAR)


def test_each_task_mutation_appends_one_entry_with_its_detail(env):
    task = later(env)
    patched = later(env)
    assert env.client.delete(f"/api/v1/tasks/{task['id']}").status_code == 200
    assert env.client.post(f"/api/v1/tasks/{task['id']}/retry").status_code == 200
    assert (
        env.client.patch(
            f"/api/v1/tasks/{patched['id']}",
            json={"status": "failed", "error_message": "disk full", "result": {"big": "x" * 100}},
        ).status_code
        == 200
    )
    assert env.client.delete(f"/api/v1/tasks/{patched['id']}?purge=true").status_code == 200

    entries = audit(env)
    assert [(e["action"], e["target"]) for e in entries] == [
        ("task.cancel", task["id"]),
        ("task.retry", task["id"]),
        ("task.patch", patched["id"]),
        ("task.purge", patched["id"]),
    ]
    assert [e["detail"] for e in entries] == [
        {"from": "scheduled"},
        {"from": "cancelled"},
        {
            "status": "failed",
            "error_message": "disk full",
            "result": True,
            "from": "scheduled",
            "to": "failed",
        },
        {"state": "failed"},
    ]
    assert all(e["actor"] == "anonymous" and e["at"].endswith("Z") for e in entries)
    assert len({e["id"] for e in entries}) == 4
    assert env.client.get("/admin/audit").get_json()["size"] == 4


def test_a_refused_mutation_writes_no_entry(env):
    task = later(env)
    assert env.client.delete(f"/api/v1/tasks/{task['id']}").status_code == 200
    refused = [
        env.client.delete(f"/api/v1/tasks/{task['id']}"),  # already final
        env.client.patch(f"/api/v1/tasks/{task['id']}", json={"progress": 5}),  # final
        env.client.delete(f"/api/v1/tasks/{later(env)['id']}?purge=true"),  # not final
        env.client.post(f"/api/v1/tasks/{later(env)['id']}/retry"),  # not final
        env.client.delete("/api/v1/tasks/no-such-task"),
        env.client.post("/admin/dlq/retry", json={"task_id": task["id"]}),  # not in DLQ
        env.client.delete("/admin/dlq"),  # nothing to clear
    ]
    assert [r.status_code for r in refused] == [409, 409, 409, 409, 404, 404, 200]
    assert [e["action"] for e in audit(env)] == ["task.cancel"]


def test_no_change_is_made_when_its_entry_cannot_be_written(env):
    task = later(env)
    env.redis.set("tq:audit", "not a stream")  # XADD refused: WRONGTYPE
    try:
        response = env.client.delete(f"/api/v1/tasks/{task['id']}")
        assert response.status_code == 500
        assert env.get(task["id"])["state"] == "scheduled"  # nothing changed
    finally:
        env.redis.delete("tq:audit")
    assert env.client.delete(f"/api/v1/tasks/{task['id']}").status_code == 200
    assert [e["action"] for e in audit(env)] == ["task.cancel"]


def test_admin_mutations_are_audited(env):
    worker = env.worker()
    dead = [env.submit(type="fail", max_retries=0) for _ in range(3)]
    for task in dead:
        env.wait_state(task["id"], "dead_letter")
    for path in (f"/admin/workers/{worker.hostname}/pause",
                 f"/admin/workers/{worker.hostname}/resume",
                 "/admin/queues/low/pause", "/admin/queues/low/pause",  # the second: no change
                 "/admin/queues/low/resume"):
        assert env.client.post(path).status_code in (200, 202), path
    assert env.client.post("/admin/dlq/retry", json={"task_id": dead[0]["id"]}).status_code == 200
    env.wait_state(dead[0]["id"], "dead_letter")
    retried = env.client.post("/admin/dlq/retry", json={"retry_all": True}).get_json()
    assert retried["retried_count"] == 3
    for task in dead:
        env.wait_state(task["id"], "dead_letter")
    assert env.client.delete("/admin/dlq").get_json()["cleared_count"] == 3

    entries = audit(env)
    assert [(e["action"], e["target"]) for e in entries[:5]] == [
        ("worker.pause", worker.hostname), ("worker.resume", worker.hostname),
        ("queue.pause", "low"), ("queue.resume", "low"), ("dlq.retry", dead[0]["id"])]
    assert entries[4]["detail"] == {"all": False, "from": "dead_letter"}
    assert sorted(e["target"] for e in entries[5:8]) == sorted(t["id"] for t in dead)
    assert all(e["action"] == "dlq.retry" and e["detail"]["all"] for e in entries[5:8])
    assert entries[8:] == [{**entries[8], "action": "dlq.clear", "target": "dlq",
                            "detail": {"cleared": 3}}]


def test_entries_page_with_count_and_after_newest_last(env):
    tasks = [later(env) for _ in range(5)]
    for task in tasks:
        env.client.delete(f"/api/v1/tasks/{task['id']}")
    first = audit(env, count=2)
    rest = audit(env, after=first[-1]["id"])
    assert [e["target"] for e in first + rest] == [t["id"] for t in tasks]
    assert audit(env, after=rest[-1]["id"]) == []
    for bad in ({"count": 0}, {"count": 1001}, {"after": "yesterday"}, {"newest": "1"}):
        response = env.client.get("/admin/audit", query_string=bad)
        assert response.status_code == 400, bad


@pytest.fixture
def secured(env):
    settings = env.settings.with_overrides(
        auth_enabled=True, jwt_secret_key=SECRET, api_keys=f"{ADMIN_KEY}:admin,{USER_KEY}:user"
    )
    return create_app(settings)


def _bearer(app, sub: str, role: str) -> dict[str, str]:
    with app.app_context():
        token = create_access_token(
            identity=sub, additional_claims={"role": role}, expires_delta=timedelta(minutes=5)
        )
    return {"Authorization": f"Bearer {token}"}


def test_the_actor_is_the_jwt_sub_or_the_api_key_fingerprint(env, secured):
    client = secured.test_client()
    callers = {
        f"key:{hashlib.sha256(USER_KEY.encode()).hexdigest()[:8]}": {"X-API-Key": USER_KEY},
        f"key:{hashlib.sha256(ADMIN_KEY.encode()).hexdigest()[:8]}": {"X-API-Key": ADMIN_KEY},
        "alice": _bearer(secured, "alice", "user"),
        "root@ops": _bearer(secured, "root@ops", "admin"),
    }
    for headers in callers.values():
        task = client.post(
            "/api/v1/tasks", json={"type": "echo", "scheduled_at": FAR}, headers=headers
        ).get_json()
        assert client.delete(f"/api/v1/tasks/{task['id']}", headers=headers).status_code == 200
    admin = {"X-API-Key": ADMIN_KEY}
    entries = client.get("/admin/audit", headers=admin).get_json()["entries"]
    assert [e["actor"] for e in entries] == list(callers)
    assert all(ADMIN_KEY not in str(e) and USER_KEY not in str(e) for e in entries)


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": USER_KEY}])
def test_the_audit_log_is_for_admins_only(secured, headers):
    response = secured.test_client().get("/admin/audit", headers=headers)
    assert response.status_code == (401 if not headers else 403)
