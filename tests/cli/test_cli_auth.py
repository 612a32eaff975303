"""``taskqueue`` against a service with auth on: API keys and JWTs, on HTTP and on ``/ws``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask_jwt_extended import JWTManager, create_access_token

from tests.harness import WebServer

from .conftest import Cli, Stack

SECRET = "cli-secret-" + "x" * 32
KEYS = "cli-admin-key:admin,cli-user-key:user"


@pytest.fixture(scope="module")
def secured(stack: Stack) -> Iterator[WebServer]:
    server = WebServer(
        stack.redis_url,
        workers=1,
        threads=8,
        upload_dir=stack.uploads,
        auth_enabled="true",
        api_keys=KEYS,
        jwt_secret_key=SECRET,
    ).start()
    yield server
    server.stop()


def token(role: str) -> str:
    app = Flask(__name__)
    app.config["JWT_SECRET_KEY"] = SECRET
    JWTManager(app)
    with app.app_context():
        return create_access_token(identity="cli-test", additional_claims={"role": role})


def test_without_credentials_the_api_message_and_exit_3(secured: WebServer):
    for args in (["ls"], ["watch"], ["submit", "echo"]):
        run = Cli(secured.url)(*args, expect=3)
        assert run.err.strip() == "Error: missing or invalid credentials (HTTP 401)"
    run = Cli(secured.url, TASKQUEUE_API_KEY="wrong")("stats", expect=3)
    assert "(HTTP 401)" in run.err


def test_an_api_key_reaches_http_and_the_event_stream(secured: WebServer):
    admin = Cli(secured.url, TASKQUEUE_API_KEY="cli-admin-key")
    result = admin("submit", "sleep", "--payload", '{"seconds": 0.3, "steps": 2}', "--wait")
    assert result.lines[-2].split()[2] == "completed"
    assert admin("workers", "--json").json()["count"] == 1
    user = Cli(secured.url)
    task_id = user("--api-key", "cli-user-key", "submit", "echo", "--wait").lines[0]
    assert user("--api-key", "cli-user-key", "watch", task_id).lines[-1].split()[2] == "completed"
    refused = user("--api-key", "cli-user-key", "workers", expect=3)
    assert "(HTTP 403)" in refused.err


def test_a_jwt_from_the_environment_or_the_option(secured: WebServer):
    admin = Cli(secured.url, TASKQUEUE_TOKEN=token("admin"))
    envelope = admin("submit", "echo", "--payload", '{"by": "jwt"}', "--wait", "--json").json()
    assert envelope["state"] == "completed" and envelope["result"] == {"by": "jwt"}
    assert admin("dlq", "ls", "--json").json()["size"] >= 0
    user = Cli(secured.url)
    assert user("--token", token("user"), "get", envelope["id"], "--json").json()["id"]
    assert "(HTTP 403)" in user("--token", token("user"), "queues", expect=3).err
    assert "(HTTP 401)" in user("--token", "not.a.jwt", "ls", expect=3).err
