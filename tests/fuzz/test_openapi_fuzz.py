"""schemathesis fuzzes a live service (real Redis, real worker, auth on) against the service's
own /openapi.json: every operation, stateful sequences through the documented links, and all
checks — no 5xx, every response matching its schema, nothing accepted that the document says
must be refused, nothing served without credentials — plus our own ``strict_json_body``: every
JSON response parses as strict JSON (no ``Infinity``, no lone surrogates). Settings:
schemathesis.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT, RedisServer, WebServer, Worker

ADMIN_KEY = "fuzz-admin-key-0000"
#: Kept moderate for CI; raise it for a longer fuzz run (FUZZ_MAX_EXAMPLES=300).
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))
#: FUZZ_AUTH=false fuzzes a deployment without auth (its document asks for no credentials).
AUTH = os.environ.get("FUZZ_AUTH", "true")


@pytest.fixture
def live_service(tmp_path):
    server = RedisServer().start()
    options = {"auth_enabled": AUTH, "api_keys": f"{ADMIN_KEY}:admin",
               "upload_dir": tmp_path / "uploads", "max_upload_bytes": 65536}
    worker = Worker(server.url(), "fuzz", log_dir=tmp_path, **options)
    web = WebServer(server.url(), workers=2, threads=8, **options)
    try:
        worker.start()
        yield web.start()
    finally:
        web.stop()
        worker.stop()
        server.stop()


def test_the_service_satisfies_its_own_openapi_document(live_service):
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    command = [
        executable or "schemathesis", "run", f"{live_service.url}/openapi.json",
        "--url", live_service.url, *(["-H", f"X-API-Key: {ADMIN_KEY}"] if AUTH == "true" else []),
        # Every check runs ("checks.enabled = true" in schemathesis.toml is --checks all; a
        # --checks option here would override the file's named per-operation exclusions).
        "--max-examples", str(EXAMPLES_PER_OPERATION), "--generation-deterministic",
        # WebSockets cannot be fuzzed over HTTP; /docs/{path} serves Swagger UI's files.
        "--exclude-path-regex", r"^/(ws|api/v1/ws/.*|docs/.*)$",
        "--no-color",
    ]
    hooks = str(Path(__file__).with_name("strict_json_check.py"))  # + strict JSON bodies
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3000,
                         env={**os.environ, "SCHEMATHESIS_HOOKS": hooks})
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    print(run.stdout[run.stdout.find("SUMMARY"):])  # counts, shown with pytest -rA
    assert "Stateful" in run.stdout and " passed" in run.stdout
