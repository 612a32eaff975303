"""Auth, when on, guards every route (taken from the URL map, so new routes are covered) and
every WebSocket handshake; nothing gets through without the right credentials."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token
from simple_websocket import Client
from simple_websocket import ConnectionError as WebSocketRefused

from app import create_app
from app.auth import ConfigurationError
from celery_app.settings import Settings
from tests.harness import WebServer

SECRET = "s" * 40
KEYS = "admin-key-0123:admin,user-key-4567:user"
PUBLIC = {"/admin/health", "/metrics"}
#: The console's pages and assets hold no data (what they show comes through the gate).
CONSOLE = "/ui"


@pytest.fixture
def secured(env):
    settings = env.settings.with_overrides(auth_enabled=True, api_keys=KEYS,
                                           jwt_secret_key=SECRET)
    return create_app(settings)


def _token(app, role: str | None, expires: timedelta = timedelta(minutes=5)) -> str:
    with app.app_context():
        claims = {"role": role} if role else {}
        return create_access_token(identity="alice", additional_claims=claims,
                                   expires_delta=expires)


def credential_cases(app) -> dict[str, dict[str, str]]:
    forged = pyjwt.encode({"sub": "alice", "role": "admin", "type": "access", "exp": 9999999999},
                          "another-secret-of-enough-length-000000", algorithm="HS256")
    return {
        "none": {},
        "bad key": {"X-API-Key": "nope"},
        "user key": {"X-API-Key": "user-key-4567"},
        "admin key": {"X-API-Key": "admin-key-0123"},
        "user jwt": {"Authorization": f"Bearer {_token(app, 'user')}"},
        "admin jwt": {"Authorization": f"Bearer {_token(app, 'admin')}"},
        "expired jwt": {"Authorization":
                        f"Bearer {_token(app, 'admin', timedelta(seconds=-30))}"},
        "wrong-signature jwt": {"Authorization": f"Bearer {forged}"},
        "malformed token": {"Authorization": "Bearer not.a.token"},
    }


def _expected(path: str, case: str) -> str:
    if path.rstrip("/") in PUBLIC or path == CONSOLE or path.startswith(CONSOLE + "/"):
        return "allowed"
    if case in {"none", "bad key", "expired jwt", "wrong-signature jwt", "malformed token"}:
        return "401"
    if case.startswith("user") and path.startswith("/admin"):
        return "403"
    return "allowed"


def _http_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.websocket:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: f"x-{m.group(1)}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def test_every_http_route_answers_each_credential_as_the_contract_says(secured):
    client = secured.test_client()
    cases = credential_cases(secured)
    routes = list(_http_routes(secured))
    assert len(routes) >= 17, routes  # every route of the API is in the map
    failures = []
    for method, path in routes:
        for case, headers in cases.items():
            response = client.open(path, method=method, headers=headers, json={})
            got = {401: "401", 403: "403"}.get(response.status_code, "allowed")
            if got != _expected(path, case):
                failures.append((method, path, case, response.status_code))
            if got in {"401", "403"}:
                assert response.get_json()["error"] in {"Unauthorized", "Forbidden"}
    assert failures == []


def test_auth_off_by_default_leaves_everything_open(env):
    assert env.client.get("/admin/workers").status_code == 200
    assert env.client.get("/api/v1/tasks").status_code == 200


def test_a_token_without_exp_or_role_is_refused(secured):
    client = secured.test_client()
    no_exp = pyjwt.encode({"sub": "alice", "role": "admin", "type": "access"}, SECRET,
                          algorithm="HS256")
    assert client.get("/api/v1/tasks",
                      headers={"Authorization": f"Bearer {no_exp}"}).status_code == 401
    no_role = _token(secured, None)
    assert client.get("/api/v1/tasks",
                      headers={"Authorization": f"Bearer {no_role}"}).status_code == 403


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"api_keys": "", "jwt_secret_key": ""}, "needs API_KEYS or JWT_SECRET_KEY"),
    ({"api_keys": "", "jwt_secret_key": "short"}, "at least 32 bytes"),
    ({"api_keys": "k:root", "jwt_secret_key": ""}, "key:role pairs"),
])
def test_start_up_refuses_an_unusable_auth_configuration(overrides, fragment):
    settings = Settings(redis_url="redis://127.0.0.1:1/0", auth_enabled=True, **overrides)
    with pytest.raises(ConfigurationError, match=fragment):
        create_app(settings)


def test_credentials_never_reach_the_logs(secured, caplog):
    client = secured.test_client()
    cases = credential_cases(secured)
    with caplog.at_level(logging.DEBUG):
        for headers in cases.values():
            client.get("/admin/workers", headers=headers)
    secrets = ["admin-key-0123", "user-key-4567", "nope", SECRET] + [
        h["Authorization"].split()[1] for h in cases.values() if "Authorization" in h]
    logged = caplog.text
    assert "rejected request" in logged
    assert not [s for s in secrets if s in logged]


@pytest.fixture
def secured_server(env):
    server = WebServer(env.url, workers=1, threads=16, auth_enabled="true", api_keys=KEYS,
                       jwt_secret_key=SECRET).start()
    yield server
    server.stop()


def _handshake(server: WebServer, path: str, headers: dict[str, str]) -> str:
    url = server.url.replace("http://", "ws://") + path
    try:
        client = Client.connect(url, headers=headers)
    except WebSocketRefused as exc:
        return str(exc.status_code)
    client.close()
    return "allowed"


def test_websocket_handshakes_need_the_same_credentials(secured, secured_server):
    cases = credential_cases(secured)
    for path in ("/ws", "/api/v1/ws/tasks/client-1"):
        for case, headers in cases.items():
            expected = "401" if _expected(path, case) == "401" else "allowed"
            assert _handshake(secured_server, path, headers) == expected, (path, case)
    user_token = _token(secured, "user")
    assert _handshake(secured_server, f"/ws?token={user_token}", {}) == "allowed"
    assert _handshake(secured_server, "/ws?api_key=user-key-4567", {}) == "allowed"
    assert _handshake(secured_server, "/ws?api_key=wrong", {}) == "401"
    assert _handshake(secured_server, "/ws?token=not.a.token", {}) == "401"


def test_query_string_credentials_only_count_on_websocket_routes(secured):
    client = secured.test_client()
    assert client.get("/api/v1/tasks?api_key=user-key-4567").status_code == 401
    assert client.get(f"/api/v1/tasks?token={_token(secured, 'admin')}").status_code == 401
