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


# -- text that is not Unicode: every way a client can send text -----------------------------

# A lone UTF-16 surrogate as JSON writes it, \ud83d: legal JSON text, not Unicode.


@pytest.mark.parametrize(("method", "path", "raw", "field"), [
    ("post", "/api/v1/tasks", r'{"type":"echo","payload":{"note":"\ud83d"}}', "payload.note"),
    ("post", "/api/v1/tasks", r'{"type":"echo","metadata":{"\udc00":1}}',
     "metadata.<key>"),
    ("post", "/api/v1/tasks", r'{"type":"echo","payload":{"l":["ok","x\udfffy"]}}',
     "payload.l.1"),
    ("post", "/api/v1/tasks", r'{"type":"ech\ud83do"}', "type"),
    ("patch", "/api/v1/tasks/t-1", r'{"error_message":"\ud83d"}', "error_message"),
    ("post", "/admin/dlq/retry", r'{"task_id":"\ud83d"}', "task_id"),
])
def test_lone_surrogates_in_json_bodies_are_a_400_naming_the_field(env, method, path, raw,
                                                                   field):
    response = getattr(env.client, method)(path, data=raw.encode(),
                                           content_type="application/json")
    assert response.status_code == 400, response.get_data()
    assert response.get_json()["message"].startswith(f"{field}: ")
    assert "surrogate" in response.get_json()["message"]
    assert env.redis.dbsize() == 0


@pytest.mark.parametrize(("raw", "field"), [
    (b'{"type":"echo","metadata":{"n":1e999},"payload":{"m":-1e400}}', "metadata.n"),
    (b'{"type":"echo","payload":{"deep":[0,[1e309]]}}', "payload.deep.1.0"),
    (b'{"type":"echo","payload":{"x":-123456789e400}}', "payload.x"),
    (b'{"type":"echo","metadata":{"n":1E+999}}', "metadata.n"),
])
def test_numbers_beyond_a_double_are_a_400_naming_the_field(env, raw, field):
    response = env.client.post("/api/v1/tasks", data=raw, content_type="application/json")
    assert response.status_code == 400
    message = response.get_json()["message"]
    assert message.startswith(f"{field}: ") and "out of range" in message
    assert env.redis.dbsize() == 0


def test_patch_results_beyond_a_double_are_refused_and_nothing_changes(env):
    task = env.submit(type="echo")
    response = env.client.patch(f"/api/v1/tasks/{task['id']}", data=b'{"result":{"v":1e999}}',
                                content_type="application/json")
    assert response.status_code == 400 and response.get_json()["message"].startswith("result.v")
    assert "result" not in env.get(task["id"])


def test_large_integers_and_small_doubles_are_still_exact(env):
    payload = {"big": 10**40, "tiny": 5e-324, "max": 1.7976931348623157e308}
    task = env.submit(type="echo", payload=payload)
    assert env.get(task["id"])["payload"] == payload


@pytest.mark.parametrize(("query", "name"), [
    ("type=%ED%A0%BD", "type"),   # a surrogate encoded as UTF-8 bytes: not UTF-8
    ("%FF=1", "\\xff"),
    ("page=1&state=%C3", "state"),
    ("status=caf%E9", "status"),  # latin-1, not UTF-8
])
def test_query_strings_that_are_not_utf8_are_a_400_naming_the_parameter(env, query, name):
    for path in ("/api/v1/tasks", "/admin/dlq", "/api/v1/tasks/statistics"):
        response = env.client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert response.get_json()["message"] == f"{name}: query parameter is not valid UTF-8"


def test_a_utf8_query_string_is_read_as_text(env):
    response = env.client.get("/api/v1/tasks?type=%E2%98%83")
    assert response.status_code == 400 and "unknown task type '☃'" in response.get_json()["message"]


@pytest.mark.parametrize(
    "key", ["caf\xe9", "a" * 256, "tab\there", "\x7f", "ключ", "", "a b", " lead"]
)
def test_bad_idempotency_keys_are_a_400_naming_the_header(env, key):
    environ = {"HTTP_IDEMPOTENCY_KEY": key.encode("utf-8").decode("latin-1")}
    response = env.client.post("/api/v1/tasks", json={"type": "echo"}, environ_base=environ)
    assert response.status_code == 400
    assert response.get_json()["message"].startswith("Idempotency-Key: ")
    assert env.redis.dbsize() == 0


def _multipart(parts: list[tuple[bytes, bytes, bytes | None]]) -> bytes:
    body = b""
    for name, value, filename in parts:
        disposition = b'form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        body += b"--XyZ\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + value + b"\r\n"
    return body + b"--XyZ--\r\n"


@pytest.mark.parametrize(("parts", "field"), [
    ([(b"file", b"data", b"a.txt"), (b"metadata", b'{"k":"\xff"}', None)], "metadata"),
    ([(b"file", b"data", b"a.txt"), (b"type", b"file.proc\xedss", None)], "type"),
    ([(b"file", b"data", b"a.txt"), (b"metadata", b'{"k":"\\ud83d"}', None)], "metadata"),
    ([(b"file", b"data", b"caf\xe9.txt")], "multipart"),
    ([(b"file", b"data", b"a.txt"), (b"n\xffme", b"1", None)], "multipart"),
])
def test_multipart_text_that_is_not_unicode_is_a_400(env, parts, field):
    response = env.client.post("/api/v1/tasks/upload", data=_multipart(parts),
                               content_type="multipart/form-data; boundary=XyZ")
    assert response.status_code == 400, response.get_data()
    assert response.get_json()["message"].startswith(f"{field}")
    assert env.redis.dbsize() == 0
    assert not [p for p in (env.tmp_path / "uploads").rglob("*") if p.is_file()]


# -- dates ------------------------------------------------------------------------------------

@pytest.mark.parametrize("moment", [
    "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00.5+00:01",
])
def test_dates_whose_utc_moment_is_out_of_range_are_a_400(env, moment):
    response = env.client.post("/api/v1/tasks", json={"type": "echo", "scheduled_at": moment})
    assert response.status_code == 400
    assert response.get_json()["message"].startswith("scheduled_at: ")
    assert "out of range" in response.get_json()["message"]


@pytest.mark.parametrize(("moment", "stored"), [
    ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59.000Z"),
    ("9999-12-31T11:59:59-12:00", "9999-12-31T23:59:59.000Z"),
    ("2999-01-01T00:00:00+14:00", "2998-12-31T10:00:00.000Z"),
])
def test_far_future_dates_within_range_are_scheduled(env, moment, stored):
    task = env.submit(type="echo", scheduled_at=moment)
    assert task["state"] == "scheduled" and task["scheduled_at"] == stored


@pytest.mark.parametrize("moment", ["10000-01-01T00:00:00Z", "2030-02-30T00:00:00Z", "soon", 17])
def test_malformed_dates_are_a_400(env, moment):
    response = env.client.post("/api/v1/tasks", json={"type": "echo", "scheduled_at": moment})
    assert response.status_code == 400
    assert response.get_json()["message"].startswith("scheduled_at: ")


@pytest.mark.parametrize("path", ["/ws", "/ws?types=task.*", "/api/v1/ws/tasks/0",
                                  "/api/v1/ws/tasks/client-1/"])
def test_plain_requests_to_websocket_routes_are_426_upgrade_required(env, path):
    response = env.client.get(path)
    assert response.status_code == 426
    assert response.get_json() == {
        "error": "Upgrade Required",
        "message": "this is a WebSocket endpoint: send a WebSocket upgrade request"}
    assert response.headers["Upgrade"] == "websocket"


@pytest.mark.parametrize(("data", "claimed", "sniffed"), [
    (b"a,b\n1,2\n", "application/octet-stream", "text/plain"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "text/plain", "image/png"),
    (b'{"k": 1}', "image/jpeg", "application/json"),
    (b"\x00\xff\xfe binary", "text/csv", "application/octet-stream"),
])
def test_an_uploads_content_type_is_sniffed_not_taken_from_the_client(env, data, claimed,
                                                                         sniffed):
    import io

    response = env.client.post("/api/v1/tasks/upload", content_type="multipart/form-data",
                               data={"file": (io.BytesIO(data), "f.dat", claimed)})
    assert response.status_code == 201
    assert response.get_json()["content_type"] == sniffed


# -- Idempotency-Key reused with another request ----------------------------------------------

@pytest.mark.parametrize(("second", "differ"), [
    ({"type": "echo", "payload": {"n": 2}}, "payload"),
    ({"type": "sleep", "payload": {"seconds": 1}}, "type, payload"),
    ({"type": "echo", "payload": {"n": 1}, "priority": "high"}, "priority"),
    ({"type": "echo", "payload": {"n": 1}, "metadata": {"m": 1}, "timeout": 9},
     "timeout, metadata"),
])
def test_an_idempotency_key_reused_with_another_request_is_a_422_naming_the_mismatch(
        env, second, differ):
    headers = {"Idempotency-Key": "order-7"}
    first = env.submit(type="echo", payload={"n": 1}, headers=headers)
    response = env.client.post("/api/v1/tasks", json=second, headers=headers)
    assert response.status_code == 422
    message = response.get_json()["message"]
    assert f"(different {differ});" in message and first["id"] in message
    assert env.redis.zcard("tq:idx:created:all") == 1 and env.redis.llen("low") == 1


@pytest.mark.parametrize("same", [
    {"type": "echo", "payload": {"n": 1}},
    {"type": "echo", "payload": {"n": 1}, "priority": 0, "max_retries": 3.0},  # the defaults
    {"payload": {"n": 1}, "type": "echo", "metadata": {}},                      # key order
])
def test_the_same_request_with_the_same_key_gets_the_first_task(env, same):
    headers = {"Idempotency-Key": "order-8"}
    first = env.submit(type="echo", payload={"n": 1}, headers=headers)
    again = env.submit(expect=200, headers=headers, **same)
    assert again["id"] == first["id"]


# -- metric labels from client text -------------------------------------------------------------

def _http_series(env) -> set[str]:
    text = env.client.get("/metrics").get_data(as_text=True)
    return {line.rsplit(" ", 1)[0] for line in text.splitlines()
            if line.startswith("flask_http_request")}


def test_invented_methods_and_paths_add_a_bounded_number_of_metric_series(env):
    env.client.open("/admin/health", method="XQZ")
    env.client.get("/no/such/route")
    env.client.get("/api/v1/tasks/missing")
    baseline = _http_series(env)
    for n in range(100):
        assert env.client.open("/admin/health", method=f"X{n}Q").status_code == 405
        assert env.client.get(f"/invented/{n}/path?x={n}").status_code == 404
        env.client.get(f"/api/v1/tasks/missing-{n}")
    assert _http_series(env) - baseline == set()  # 300 more requests, not one new series
    labels = " ".join(_http_series(env))
    assert 'method="other"' in labels and 'url_rule="unmatched"' in labels
    assert "X7Q" not in labels and "invented" not in labels and 'url_rule="None"' not in labels
    assert 'url_rule="/api/v1/tasks/<task_id:task_id>"' in labels
