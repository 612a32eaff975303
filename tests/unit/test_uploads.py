"""Which upload files :func:`celery_app.uploads.orphans` selects: by name, by age, by task."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from celery_app.uploads import OWNER_FILE, orphans, owned, remove_orphans
from tests.harness import deep_directory

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


def test_old_directories_with_tasks_never_hide_the_orphans_after_them(tmp_path):
    live = [_make(tmp_path / f"task-{n}-aaaaaaa{n:02d}", 120, directory=True) for n in range(7)]
    gone = [_make(tmp_path / f"task-{n}-bbbbbbb{n:02d}", 120, directory=True) for n in range(3)]
    batches: list[int] = []

    def missing(ids: list[str]) -> list[str]:
        batches.append(len(ids))
        return [i for i in ids if i.startswith("task-") and "bbb" in i]

    found = orphans(tmp_path, missing, 60, now=NOW, limit=3, batch=2)
    assert sorted(found) == sorted(gone)
    assert max(batches) <= 2 and all(path.is_dir() for path in live)


def test_names_that_only_resemble_a_task_id_are_not_candidates(tmp_path):
    for name in ("task-1700000000-abcdef012\n", "task-١٧٠٠-abcdef012", "task-1-ABCDEF012",
                 "xtask-1-abcdef012", "task-1-abcdef0123"):
        _make(tmp_path / name, 120, directory=True)
    asked: list[str] = []
    assert orphans(tmp_path, lambda ids: asked.extend(ids) or ids, 60, now=NOW) == []
    assert asked == []


def test_a_partial_directory_that_is_a_symlink_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    precious = _make(outside / "precious.txt", 7200, directory=False)
    root = tmp_path / "uploads"
    root.mkdir()
    (root / ".partial").symlink_to(outside, target_is_directory=True)
    assert orphans(root, lambda ids: ids, 60, now=NOW) == []
    assert precious.is_file()


def test_an_owner_marker_that_is_not_a_regular_file_is_never_ours(tmp_path):
    os.mkfifo(tmp_path / OWNER_FILE)  # reading it would block until a writer came
    assert not owned(tmp_path, "ours")
    (tmp_path / OWNER_FILE).unlink()
    (tmp_path / "elsewhere").write_text("ours")
    (tmp_path / OWNER_FILE).symlink_to(tmp_path / "elsewhere")
    assert not owned(tmp_path, "ours")
    (tmp_path / OWNER_FILE).unlink()
    (tmp_path / OWNER_FILE).mkdir()
    assert not owned(tmp_path, "ours")


def test_a_marker_that_could_not_be_written_whole_is_not_left_behind(tmp_path, monkeypatch):
    real_write = Path.write_text

    def disk_full(self: Path, data: str, *args, **kwargs):
        real_write(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError):
        owned(tmp_path, "ours")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no marker, no scratch file
    assert owned(tmp_path, "ours") and (tmp_path / OWNER_FILE).read_text() == "ours"


def test_removal_reports_what_it_could_not_remove(tmp_path):
    gone = _make(tmp_path / "task-1-aaaaaaaaa", 120, directory=True)
    (gone / "link").symlink_to(tmp_path / "kept.txt")
    kept = _make(tmp_path / "kept.txt", 120, directory=False)
    with deep_directory(tmp_path / "task-2-bbbbbbbbb", 1200) as deep:
        removed, failed = remove_orphans([gone, deep, tmp_path / "task-3-ccccccccc"])
        assert removed == [gone, tmp_path / "task-3-ccccccccc"]  # already gone counts
        assert [path for path, _ in failed] == [deep] and failed[0][1]
    assert kept.is_file()  # the symlink inside was unlinked, not followed
