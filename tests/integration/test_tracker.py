"""The upload tracker's document, served on the same task model: uploads, PATCH, listing,
statistics, retention."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app import create_app
from celery_app import keys
from tests.harness import WebServer, deep_directory, wait_for

TEXT = b"first line\nsecond line\nthird line without newline"


def upload(client, data: bytes = TEXT, name: str = "notes.txt", **form):
    body = {"file": (io.BytesIO(data), name), **form}
    return client.post("/api/v1/tasks/upload", data=body, content_type="multipart/form-data")


def task_dirs(env) -> list[str]:
    root = Path(env.settings.upload_dir)
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) \
        if root.exists() else []


def partial_files(env) -> list[Path]:
    folder = Path(env.settings.upload_dir) / ".partial"
    return list(folder.iterdir()) if folder.exists() else []


def test_an_uploaded_file_is_processed_by_a_worker_with_progress(env):
    response = upload(env.client, priority="2", metadata='{"batch": 7}')
    assert response.status_code == 201
    task = response.get_json()
    assert re.fullmatch(r"task-\d+-[0-9a-f]{9}", task["task_id"])
    assert (task["file_name"], task["file_size"], task["status"]) == ("notes.txt", len(TEXT),
                                                                       "pending")
    assert task["type"] == "file.process" and task["priority"] == "high"
    assert task["metadata"] == {"batch": 7}
    assert task["sha256"] == hashlib.sha256(TEXT).hexdigest()
    stored = Path(env.settings.upload_dir) / task["task_id"] / "notes.txt"
    assert stored.read_bytes() == TEXT and not partial_files(env)

    env.worker()
    done = env.wait_state(task["task_id"], "completed")
    assert done["result"] == {"size": len(TEXT), "sha256": hashlib.sha256(TEXT).hexdigest(),
                              "lines": 3, "content_type": "text/plain"}
    progress = [f["type"] for _, f in env.redis.xrange("tq:events") if task["id"] in f["data"]]
    assert "task.progress" in progress


def test_external_processor_drives_a_task_through_patch_and_no_worker_runs_it(env):
    task = upload(env.client).get_json()
    task_id = task["task_id"]

    step = env.client.patch(f"/api/v1/tasks/{task_id}", json={"status": "processing",
                                                              "progress": 25})
    assert step.status_code == 200
    assert (step.get_json()["status"], step.get_json()["state"]) == ("processing", "running")
    assert step.get_json()["progress"] == 25 and step.get_json()["started_at"]
    assert env.client.patch(f"/api/v1/tasks/{task_id}",
                            json={"progress": 50}).get_json()["progress"] == 50
    done = env.client.patch(f"/api/v1/tasks/{task_id}",
                            json={"status": "completed", "result": {"rows": 3}}).get_json()
    assert (done["status"], done["progress"], done["result"]) == ("completed", 100, {"rows": 3})
    assert done["completed_at"] >= done["started_at"]
    again = env.client.patch(f"/api/v1/tasks/{task_id}", json={"progress": 10})
    assert again.status_code == 409 and again.get_json()["error"] == "Conflict"

    env.worker()
    wait_for(env.queue_empty, message="the queued message consumed")
    after = env.get(task_id)
    assert after["state"] == "completed" and after["attempts"] == 0
    kinds = [f["type"] for _, f in env.redis.xrange("tq:events") if task_id in f["data"]]
    assert kinds == ["task.submitted", "task.started", "task.progress", "task.progress",
                     "task.completed"]


def test_a_failed_report_is_final_and_retryable(env):
    task = env.submit(type="echo")
    failed = env.client.patch(f"/api/v1/tasks/{task['id']}",
                              json={"status": "failed", "error_message": "disk full"}).get_json()
    assert (failed["state"], failed["status"], failed["error_message"]) == (
        "failed", "failed", "disk full")
    retried = env.client.post(f"/api/v1/tasks/{task['id']}/retry").get_json()
    assert retried["state"] == "pending" and "error_message" not in retried


def test_common_issues_partial_id_or_wrong_path_is_404(env):
    task = upload(env.client).get_json()
    timestamp = task["task_id"].split("-")[1]
    partial = env.client.patch(f"/api/v1/tasks/{timestamp}", json={"progress": 25})
    assert partial.status_code == 404
    assert partial.get_json() == {"error": "Not Found", "message": "task not found"}
    wrong = env.client.patch(f"/api/task/{task['task_id']}", json={"progress": 25})
    assert wrong.status_code == 404 and wrong.get_json()["error"] == "Not Found"


def test_invalid_patches_are_400(env):
    task = env.submit(type="echo")
    for body in ({}, {"status": "done"}, {"progress": 101}, {"progress": "5"},
                 {"colour": "red"}, {"result": None}, {"error_message": ""}):
        response = env.client.patch(f"/api/v1/tasks/{task['id']}", json=body)
        assert response.status_code == 400, body
    assert env.get(task["id"])["state"] == "pending"


def test_upload_over_the_limit_is_413_and_leaves_nothing(env):
    client = create_app(env.settings.with_overrides(max_upload_bytes=4096)).test_client()
    response = upload(client, data=b"x" * 10_000)
    assert response.status_code == 413
    assert response.get_json()["error"] == "Request Entity Too Large"
    assert task_dirs(env) == [] and partial_files(env) == []
    assert not list(env.redis.scan_iter("tq:task:*"))


def test_upload_without_a_file_or_name_is_400(env):
    missing = env.client.post("/api/v1/tasks/upload", data={"priority": "1"},
                              content_type="multipart/form-data")
    assert missing.status_code == 400 and missing.get_json()["message"].startswith("file:")
    nameless = upload(env.client, name="")
    assert nameless.status_code == 400
    bad_metadata = upload(env.client, metadata="[1]")
    assert bad_metadata.status_code == 400 and "metadata" in bad_metadata.get_json()["message"]
    assert task_dirs(env) == [] and partial_files(env) == []


def test_a_file_name_cannot_escape_the_upload_directory(env):
    task = upload(env.client, name="../../../etc/evil.sh").get_json()
    assert task["file_name"] == "evil.sh"
    assert (Path(env.settings.upload_dir) / task["task_id"] / "evil.sh").is_file()
    assert task_dirs(env) == [task["task_id"]]
    escaped = env.submit(expect=201, type="file.process", payload={"file": "../../etc/passwd"},
                         max_retries=0)
    env.worker()
    assert "outside" in env.wait_state(escaped["id"], "dead_letter")["error"]


def test_purging_an_upload_deletes_its_file(env):
    task = upload(env.client).get_json()
    env.client.patch(f"/api/v1/tasks/{task['task_id']}", json={"status": "completed"})
    assert env.client.delete(f"/api/v1/tasks/{task['task_id']}?purge=true").status_code == 200
    assert task_dirs(env) == []


def test_listing_filters_sorts_and_pages(env):
    ids = {p: env.submit(type="echo", priority=p)["id"] for p in ("low", "critical", "normal")}
    sleeper = env.submit(type="sleep", payload={"seconds": 0})["id"]
    env.client.delete(f"/api/v1/tasks/{ids['normal']}")
    env.client.patch(f"/api/v1/tasks/{ids['low']}", json={"status": "processing"})

    def listed(query: str) -> list[str]:
        body = env.client.get(f"/api/v1/tasks?{query}").get_json()
        return [t["id"] for t in body["tasks"]]

    assert listed("status=cancelled") == [ids["normal"]]
    assert listed("status=processing") == [ids["low"]] == listed("state=running")
    assert listed("type=sleep") == [sleeper]
    assert sorted(listed("status=pending")) == sorted([ids["critical"], sleeper])
    by_priority = env.client.get("/api/v1/tasks?sort_by=priority").get_json()["tasks"]
    assert [t["priority"] for t in by_priority] == ["critical", "normal", "low", "low"]
    ascending = env.client.get("/api/v1/tasks?sort_by=priority&order=asc").get_json()["tasks"]
    assert [t["priority"] for t in ascending] == ["low", "low", "normal", "critical"]
    by_update = env.client.get("/api/v1/tasks?sort_by=updated_at").get_json()["tasks"]
    stamps = [t["updated_at"] for t in by_update]
    assert stamps == sorted(stamps, reverse=True)
    newest = {t["id"] for t in by_update if t["updated_at"] == stamps[0]}
    assert ids["low"] in newest  # the last one changed (ties within a ms order by id)
    page = env.client.get("/api/v1/tasks?page_size=3&page=2").get_json()
    assert (page["total"], page["pages"], page["page"], len(page["tasks"])) == (4, 2, 2, 1)


def test_statistics_count_a_mixed_workload(env):
    env.worker()
    for _ in range(3):
        env.wait_state(env.submit(type="sleep", payload={"seconds": 0.05})["id"], "completed")
    env.wait_state(env.submit(type="fail", max_retries=0)["id"], "dead_letter")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    env.client.delete(f"/api/v1/tasks/{env.submit(type='echo', scheduled_at=later)['id']}")
    reported = env.submit(type="echo", scheduled_at=later)["id"]
    env.client.patch(f"/api/v1/tasks/{reported}", json={"status": "failed"})
    env.submit(type="echo", scheduled_at=later)

    stats = env.client.get("/api/v1/tasks/statistics").get_json()
    assert {k: stats[k] for k in ("total", "pending", "processing", "completed", "failed",
                                  "cancelled")} == {"total": 7, "pending": 1, "processing": 0,
                                                    "completed": 3, "failed": 2, "cancelled": 1}
    assert stats["by_state"] == {"pending": 0, "scheduled": 1, "running": 0, "retrying": 0,
                                 "completed": 3, "failed": 1, "dead_letter": 1, "cancelled": 1}
    assert stats["success_rate"] == 0.6
    assert 50 <= stats["avg_processing_time_ms"] < 5000


def _ms(stamp: str) -> int:
    """An envelope timestamp (ISO-8601, ms, ``Z``) as ms since the epoch."""
    return (datetime.fromisoformat(stamp) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1)


def _updated_score(envelope: dict) -> int:
    """Where ``celery_app/keys.py`` puts a task in its type's updated index: the rank of its
    state × 2⁴² + its last transition (ms)."""
    return keys.STATE_RANK[envelope["state"]] * keys.UPDATED_UNIT + _ms(envelope["updated_at"])


def test_retention_sweep_removes_old_final_tasks_with_their_files(env):
    retention_ms = 1000
    env.worker(task_retention_seconds=retention_ms // 1000)
    kept = env.submit(type="echo", scheduled_at=(datetime.now(UTC) + timedelta(hours=1))
                      .isoformat())
    task = upload(env.client).get_json()
    done = env.wait_state(task["task_id"], "completed")
    # Final tasks are aged by their score in their type's updated index. Read with Redis's
    # clock in one transaction: while the retention has not passed since the completion, the
    # sweep cannot have run on it, and that score must be there (on a machine so slow that it
    # has passed, only the checks after the sweep below apply).
    pipe = env.redis.pipeline(transaction=True)
    pipe.time()
    pipe.zscore(keys.updated_index(done["type"]), task["task_id"])
    (seconds, micros), score = pipe.execute()
    if seconds * 1000 + micros // 1000 - _ms(done["updated_at"]) < retention_ms:
        assert score == _updated_score(done)
    wait_for(lambda: env.client.get(f"/api/v1/tasks/{task['task_id']}").status_code == 404,
             timeout=15, message="the sweep")
    # The sweep deletes the directory right after the envelope (never before: a task retried
    # meanwhile keeps its file), so the 404 can be seen a moment before the directory goes.
    wait_for(lambda: task_dirs(env) == [], timeout=5, message="the swept task's files removed")
    listing = env.client.get("/api/v1/tasks").get_json()
    assert [t["id"] for t in listing["tasks"]] == [kept["id"]] and listing["total"] == 1
    assert env.client.get("/api/v1/tasks/statistics").get_json()["total"] == 1
    # The swept task is gone from every index (the updated one it was aged by included), and
    # the kept one, not final, is still in its own updated index with its state's rank.
    assert not env.redis.exists(keys.task(task["task_id"]))
    for index in env.redis.scan_iter(match=f"{keys.PREFIX}idx:*"):
        assert env.redis.zscore(index, task["task_id"]) is None, index
    kept_now = env.get(kept["id"])
    assert env.redis.zscore(keys.updated_index("echo"), kept["id"]) == _updated_score(kept_now)


def _aged(path: Path, seconds: float) -> Path:
    """Set a file's or directory's modification time ``seconds`` into the past."""
    then = datetime.now(UTC).timestamp() - seconds
    os.utime(path, (then, then))
    return path


def test_files_no_task_will_use_are_reaped_once_old_and_nothing_else(env):
    root = Path(env.settings.upload_dir)
    hour = 3600
    # A directory left by a purge killed after deleting its task (no task), one whose task
    # exists, one too recent to judge, a directory not named like a task, and partial uploads.
    orphan = root / "task-1700000000-012345678"
    orphan.mkdir(parents=True)
    (orphan / "a.txt").write_bytes(TEXT)
    live = upload(env.client).get_json()
    recent = root / "task-1700000001-abcdef012"
    recent.mkdir()
    foreign = root / "notes"
    foreign.mkdir()
    (root / ".partial").mkdir(exist_ok=True)
    stale_partial = root / ".partial" / "tmp-stale"
    stale_partial.write_bytes(b"half")
    fresh_partial = root / ".partial" / "tmp-fresh"
    fresh_partial.write_bytes(b"half")
    for path in (orphan, root / live["task_id"], foreign, stale_partial):
        _aged(path, 2 * hour)

    # A directory another deployment (another Redis) claimed first is not reaped by this one.
    (root / ".owner").write_text("another deployment's token")
    first = env.worker(upload_orphan_seconds=hour)
    wait_for(lambda: "not hold this deployment's token" in first.log_path.read_text(), timeout=30,
             message="the worker declining to reap a directory it does not own")
    assert orphan.is_dir() and stale_partial.is_file()
    first.stop()

    (root / ".owner").unlink()  # the operator's fix, as the warning says
    env.worker(upload_orphan_seconds=hour)
    wait_for(lambda: not orphan.exists() and not stale_partial.exists(), timeout=30,
             message="the orphaned directory and the stale partial file removed")
    assert recent.is_dir() and foreign.is_dir() and fresh_partial.is_file()
    assert (root / ".owner").read_text() == env.redis.get(keys.upload_owner())
    # The task whose directory was just as old still has its file, and a worker runs it.
    assert env.wait_state(live["task_id"], "completed")["result"]["size"] == len(TEXT)


def test_an_upload_directory_the_reaper_cannot_use_never_holds_up_the_worker(env):
    """A FIFO at ``.owner`` (its reader would block), an orphan nested too deep to delete
    recursively, and a ``.partial`` that is a symlink out of the directory: the worker keeps
    running tasks, deletes nothing outside, and says why."""
    root = Path(env.settings.upload_dir)
    outside = env.tmp_path / "elsewhere"
    outside.mkdir()
    precious = outside / "precious.txt"
    precious.write_text("keep me")
    _aged(precious, 7200)
    root.mkdir(parents=True)
    (root / ".partial").symlink_to(outside, target_is_directory=True)
    os.mkfifo(root / ".owner")

    def a_worker_says(line: str, n: int) -> str:
        """Start a worker, wait for ``line`` in its log, see it run a task; its log."""
        worker = env.worker(upload_orphan_seconds=3600)
        wait_for(lambda: line in worker.log_path.read_text(), timeout=30, message=line)
        task = env.submit(type="echo", payload={"n": n})
        assert env.wait_state(task["id"], "completed")["result"] == {"n": n}
        worker.stop()
        return worker.log_path.read_text()

    a_worker_says("not hold this deployment's token", 1)  # the FIFO is not a regular file
    (root / ".owner").unlink()
    with deep_directory(root / "task-1700000000-0badc0ffe", 1200) as deep:
        _aged(deep, 7200)
        log = a_worker_says("could not remove orphaned upload", 2)
    assert precious.read_text() == "keep me"
    assert "maintenance tick failed" not in log


def test_an_upload_whose_partial_file_was_reaped_while_it_stalled_is_a_408(env):
    """The reaper deletes a partial file untouched for ``UPLOAD_ORPHAN_SECONDS``; the
    request it belonged to (stalled between two chunks) then answers 408, leaving nothing."""
    web = WebServer(env.url, workers=1, threads=4, upload_dir=env.settings.upload_dir).start()
    try:
        boundary = "XyZ"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"slow.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n")
        body = head.encode() + b"x" * 300_000 + f"\r\n--{boundary}--\r\n".encode()
        first, rest = body[:200_000], body[200_000:]
        with socket.create_connection(("127.0.0.1", web.port), timeout=10) as conn:
            conn.sendall((f"POST /api/v1/tasks/upload HTTP/1.1\r\nHost: x\r\n"
                          f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                          f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
                         + first)
            wait_for(lambda: [p for p in partial_files(env) if p.stat().st_size > 100_000],
                     message="the partial file streaming")
            for path in partial_files(env):
                path.unlink()  # what the reaper does to a partial file left untouched
            conn.sendall(rest)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        status_line, _, rest_of_answer = answer.partition(b"\r\n")
        assert status_line.split()[1] == b"408", answer[:500]
        payload = json.loads(rest_of_answer.split(b"\r\n\r\n", 1)[1])
        assert payload["error"] == "Request Timeout" and "stalled" in payload["message"]
        assert task_dirs(env) == [] and partial_files(env) == []
        assert not list(env.redis.scan_iter("tq:task:*"))
    finally:
        web.stop()
