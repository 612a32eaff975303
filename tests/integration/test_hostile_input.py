"""Hand-picked hostile input: nothing makes the service fall over or corrupt what it stores."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("raw", [
    b'{"type": "echo", "payload": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
    b'[' * 100000,
    b'{"type": "echo", "priority": ' + b"9" * 5000 + b"}",
    b'{"type": "echo", "timeout": 1e309}',
    b'{"type": "echo", "max_retries": -99999999999999999999}',
    b'{"type": "echo", "timeout": 3.5}',
    b'{"type": "echo", "type": "echo"}',
    b'{"type": "ech\\u0000o"}',
    b'{"type": "echo", "payload": {"x": Infinity}}',
    b"\x00\x01\x02",
])
def test_hostile_json_is_a_clear_400(env, raw):
    response = env.client.post("/api/v1/tasks", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert set(response.get_json()) == {"error", "message"}
    assert env.redis.dbsize() == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "image/png"])
def test_wrong_content_types_are_parsed_as_json_or_refused(env, content_type):
    response = env.client.post("/api/v1/tasks", data=b"type=echo", content_type=content_type)
    assert response.status_code == 400 and "JSON" in response.get_json()["message"]


def test_unicode_and_nul_in_strings_survive_untouched(env):
    payload = {"text": "nul\u0000byte ☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202eright-to-left", "big": 10**30,
               "neg": -(2**63)}
    task = env.submit(type="echo", payload=payload, metadata={"\u0000key": "ü"})
    stored = env.get(task["id"])
    assert stored["payload"] == payload and stored["metadata"] == {"\u0000key": "ü"}
    assert json.loads(json.dumps(stored))["payload"]["big"] == 10**30


@pytest.mark.parametrize("task_id", ["..%2F..%2Fetc%2Fpasswd", "%00", "a%00b", "%E2%98%83",
                                     "x" * 5000, "tq:task:abc", "*", "%2A"])
def test_odd_task_ids_are_404_not_errors(env, task_id):
    for method in ("get", "delete", "patch"):
        response = getattr(env.client, method)(f"/api/v1/tasks/{task_id}", json={"progress": 1})
        assert response.status_code == 404, (method, task_id, response.get_json())
    assert env.client.post(f"/api/v1/tasks/{task_id}/retry").status_code == 404


def test_odd_worker_ids_and_stream_ids_are_clean_errors(env):
    assert env.client.post("/admin/workers/..%2F..%2Fx/pause").status_code == 404
    assert env.client.get("/admin/dlq?after=99999999999999999999999-0").status_code == 400
    assert env.client.get("/admin/dlq?count=-1").status_code == 400
    assert env.client.get("/api/v1/tasks?page=99999999999999999999").status_code == 400
    assert env.client.get("/api/v1/tasks?page_size=1e3").status_code == 400
