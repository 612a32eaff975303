"""Where uploaded files live: ``UPLOAD_DIR/<task_id>/<sanitised name>``.

Both processes use this: the web process writes a file, a worker's ``file.process`` reads it,
and purging or the retention sweep (in a worker) deletes the task's directory. Every path is
resolved and checked to stay inside the upload directory.

Files can outlive their task only through a process killed mid-step: a web process killed
while a file streams to ``.partial/`` or between moving it into place and creating the task,
a purge killed between deleting the task and its directory, or a task lost with the Redis
that held it. :func:`orphans` finds them: an upload directory whose task no longer exists,
or a partial file, untouched for ``UPLOAD_ORPHAN_SECONDS``; the maintenance worker deletes
them — only in a directory that :func:`owned` says is this deployment's, so a directory that
another deployment (another Redis) also uses is never reaped by either.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

UPLOAD_ID = re.compile(r"^task-\d{1,12}-[0-9a-f]{9}$")
#: Where the web process streams a file before its task exists (``app.uploads``).
PARTIAL_DIR = ".partial"
#: Names the deployment whose orphan reaper may delete files here (:func:`owned`).
OWNER_FILE = ".owner"
MAX_NAME_LENGTH = 255
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def new_upload_id() -> str:
    """``task-<unix seconds>-<9 lowercase hex>``, the upload tracker's id form."""
    return f"task-{int(time.time())}-{secrets.token_hex(5)[:9]}"


def display_name(raw: str) -> str:
    """The client's file name without any directory part or control characters."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    return clean[:MAX_NAME_LENGTH] if clean not in {"", ".", ".."} else "upload"


def disk_name(raw: str) -> str:
    """A name that is safe on any filesystem and cannot leave its directory: ASCII letters,
    digits, ``.``, ``_`` and ``-`` only, never starting with a dot."""
    ascii_name = unicodedata.normalize("NFKD", display_name(raw)).encode("ascii", "ignore")
    safe = _UNSAFE.sub("_", ascii_name.decode()).lstrip("._")
    return safe[:MAX_NAME_LENGTH] or "upload"


def task_dir(root: str | Path, task_id: str) -> Path:
    """The directory of one task's files (which must stay inside ``root``)."""
    base = Path(root).resolve()
    folder = (base / task_id).resolve()
    if folder.parent != base:
        raise ValueError(f"task id {task_id!r} does not name a directory inside {base}")
    return folder


def remove_task_files(root: str | Path, task_id: str) -> None:
    """Delete a task's upload directory, if it has one."""
    if UPLOAD_ID.match(task_id):
        shutil.rmtree(task_dir(root, task_id), ignore_errors=True)


def owned(root: str | Path, token: str) -> bool:
    """Whether ``root`` belongs to the deployment that holds ``token`` (from Redis, the same
    for every process of one deployment): ``root/.owner`` is written with ``token`` when it
    does not exist, then compared. A directory first claimed by another deployment, or by
    this one before its Redis lost its data, answers false until that file is deleted."""
    marker = Path(root) / OWNER_FILE  # raises FileNotFoundError without the directory
    try:
        with open(marker, "x", encoding="ascii") as new:  # noqa: PTH123 (exclusive create)
            new.write(token)
    except FileExistsError:
        pass
    return marker.read_text(encoding="ascii", errors="replace").strip() == token


def orphans(
    root: str | Path,
    missing: Callable[[list[str]], Iterable[str]],
    older_than_seconds: float,
    *,
    now: float | None = None,
    limit: int = 1000,
) -> list[Path]:
    """Paths under ``root`` no task will ever use, at most ``limit`` of them.

    A partial file in ``.partial/``, or a task directory (``task-<seconds>-<hex>``) for which
    ``missing(ids)`` names the id (a batch of ids in; the ids without a task out), qualifies
    once its modification time is more than ``older_than_seconds`` before ``now`` (Unix
    seconds; default the current time). The age guards the moment between a file's move into
    place and its task's creation, and a stream still being written. Costs one ``stat`` per
    entry of ``root`` and one ``missing`` call.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - older_than_seconds
    found: list[Path] = []
    candidates: dict[str, Path] = {}

    def stale(entry: os.DirEntry[str]) -> bool:
        try:
            return entry.stat(follow_symlinks=False).st_mtime < cutoff
        except FileNotFoundError:  # removed meanwhile
            return False

    partial = base / PARTIAL_DIR
    if partial.is_dir():
        with os.scandir(partial) as entries:
            found.extend(Path(e.path) for e in entries if e.is_file(follow_symlinks=False)
                         and stale(e))
    with os.scandir(base) as entries:
        for entry in entries:
            if len(found) + len(candidates) >= limit:
                break
            if (UPLOAD_ID.match(entry.name) and entry.is_dir(follow_symlinks=False)
                    and stale(entry)):
                candidates[entry.name] = Path(entry.path)
    if candidates:
        found.extend(candidates[task_id] for task_id in missing(list(candidates)))
    return found[:limit]


def remove_orphans(paths: Iterable[Path]) -> None:
    """Delete what :func:`orphans` found (a directory with its files); already gone is fine."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
