"""A client generated from /openapi.json by openapi-python-client submits a task and reads it
back: the document is complete enough for the tools people generate clients with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.harness import wait_for


def _generate(document: dict, folder: Path) -> None:
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(document))
    bin_dir = Path(sys.executable).parent
    generator = shutil.which("openapi-python-client", path=str(bin_dir))
    assert generator, "openapi-python-client is a test dependency"
    run = subprocess.run(
        [
            generator,
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(folder / "taskqueue_client"),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr


def test_a_generated_client_submits_and_reads_a_task(live, tmp_path):
    _generate(live.client.get("/openapi.json").get_json(), tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        from taskqueue_client import Client
        from taskqueue_client.api.tasks import tasks_get, tasks_submit
        from taskqueue_client.models import EchoPayload, Envelope, Error, SubmitEcho

        transport = httpx.WSGITransport(app=live.app)
        client = Client(base_url="http://taskqueue", httpx_args={"transport": transport})
        created = tasks_submit.sync(
            client=client,
            body=SubmitEcho(
                type_="echo", payload=EchoPayload.from_dict({"greeting": "hi", "n": 3}), priority=2
            ),
        )
        assert isinstance(created, Envelope), created
        assert created.type_ == "echo" and created.priority.value == "high"

        def completed() -> Envelope | None:
            envelope = tasks_get.sync(task_id=created.id, client=client)
            return envelope if envelope.state.value == "completed" else None

        done = wait_for(completed, timeout=20, message="the task to complete")
        assert done.result == {"greeting": "hi", "n": 3}

        missing = tasks_get.sync(task_id="no-such-task", client=client)
        assert isinstance(missing, Error) and missing.message == "task not found"
        refused = tasks_submit.sync_detailed(
            client=client, body=SubmitEcho.from_dict({"type": "echo", "timeout": 0})
        )
        assert refused.status_code == 400 and "timeout" in refused.parsed.message
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "taskqueue_client"]:
            del sys.modules[name]
