"""Which upload files :func:`celery_app.uploads.orphans` selects: by name, by age, by task."""

from __future__ import annotations

import os
from pathlib import Path

from celery_app.uploads import OWNER_FILE, orphans, owned, remove_orphans

NOW = 2_000_000_000.0


def _make(path: Path, age_seconds: float, *, directory: bool) -> Path:
    if directory:
        path.mkdir(parents=True)
        (path / "file.bin").write_bytes(b"x")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    os.utime(path, (NOW - age_seconds, NOW - age_seconds))
    return path


def test_only_old_task_directories_without_a_task_and_old_partials_are_orphans(tmp_path):
    gone = _make(tmp_path / "task-1-aaaaaaaaa", 120, directory=True)
    alive = _make(tmp_path / "task-2-bbbbbbbbb", 120, directory=True)
    young = _make(tmp_path / "task-3-ccccccccc", 30, directory=True)
    _make(tmp_path / "task-4-not-an-id", 120, directory=True)
    _make(tmp_path / "task-5-ddddddddd", 120, directory=False)  # a file, not a task's folder
    old_partial = _make(tmp_path / ".partial" / "upload-1", 120, directory=False)
    _make(tmp_path / ".partial" / "upload-2", 30, directory=False)
    asked: list[list[str]] = []

    def missing(ids: list[str]) -> list[str]:
        asked.append(sorted(ids))
        return [i for i in ids if i != alive.name]

    found = orphans(tmp_path, missing, 60, now=NOW)
    assert sorted(found) == sorted([gone, old_partial])
    assert asked == [sorted([gone.name, alive.name])]  # one batch, young ones never asked
    assert young.is_dir()

    remove_orphans(found)
    remove_orphans(found)  # already gone is fine
    assert not gone.exists() and not old_partial.exists() and alive.is_dir()


def test_limit_bounds_one_run_and_a_missing_root_is_empty(tmp_path):
    for n in range(5):
        _make(tmp_path / f"task-{n}-eeeeeeee{n}", 120, directory=True)
    assert len(orphans(tmp_path, lambda ids: ids, 60, now=NOW, limit=3)) == 3
    assert orphans(tmp_path / "nowhere", lambda ids: ids, 60, now=NOW) == []
    assert orphans(tmp_path, lambda ids: [], 60, now=NOW) == []


def test_a_directory_is_owned_by_the_first_token_written_into_it(tmp_path):
    root = tmp_path
    assert owned(root, "ours")  # the marker is written
    assert (root / OWNER_FILE).read_text() == "ours"
    assert owned(root, "ours")
    assert not owned(root, "theirs")
    (root / OWNER_FILE).unlink()
    assert owned(root, "theirs") and not owned(root, "ours")
