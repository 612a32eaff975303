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
import stat
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

UPLOAD_ID = re.compile(r"task-[0-9]{1,12}-[0-9a-f]{9}")  # whole names only: fullmatch
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
    if UPLOAD_ID.fullmatch(task_id):
        shutil.rmtree(task_dir(root, task_id), ignore_errors=True)


def owned(root: str | Path, token: str) -> bool:
    """Whether ``root`` belongs to the deployment that holds ``token`` (from Redis, the same
    for every process of one deployment).

    ``root/.owner`` is created holding ``token`` when it does not exist — written whole to a
    temporary file first and linked into place, so a full disk cannot leave it empty — and
    then compared. Anything at ``.owner`` that is not a regular file (a FIFO, a symlink, a
    directory) answers false without blocking or following it. A directory first claimed by
    another deployment, or by this one before its Redis lost its data, answers false until
    that file is deleted. Raises ``OSError`` when ``root`` cannot be written or read.
    """
    base = Path(root)
    marker = base / OWNER_FILE
    if not os.path.lexists(marker):
        scratch = base / f"{OWNER_FILE}.{secrets.token_hex(8)}"
        try:
            scratch.write_text(token, encoding="ascii")
            try:
                os.link(scratch, marker)  # atomic: the marker appears whole or not at all
            except FileExistsError:
                pass
            except OSError:  # a filesystem without hard links: rename, as nearly atomic
                if not os.path.lexists(marker):
                    os.replace(scratch, marker)
        finally:
            scratch.unlink(missing_ok=True)
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # a symlink (ELOOP), or removed meanwhile
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, len(token) + 64).strip() == token.encode("ascii")
    finally:
        os.close(fd)


def orphans(
    root: str | Path,
    missing: Callable[[list[str]], Iterable[str]],
    older_than_seconds: float,
    *,
    now: float | None = None,
    limit: int = 1000,
    batch: int = 1000,
) -> list[Path]:
    """Paths under ``root`` no task will ever use, at most ``limit`` of them.

    A regular file in ``.partial/`` (itself a real directory, not a symlink), or a task
    directory (``task-<seconds>-<9 hex>``, not a symlink) for which ``missing(ids)`` names the
    id, qualifies once its modification time is more than ``older_than_seconds`` before
    ``now`` (Unix seconds; default the current time). The age guards the moment between a
    file's move into place and its task's creation, and a stream still being written.
    ``missing`` takes a list of at most ``batch`` ids and returns those without a task; it is
    asked about every old task directory (``ceil(old / batch)`` calls), so directories whose
    tasks live never keep older orphans from being found. Costs one ``stat`` per entry of
    ``root`` and of ``.partial/``.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - older_than_seconds
    found: list[Path] = []

    def stale(entry: os.DirEntry[str]) -> bool:
        try:
            return entry.stat(follow_symlinks=False).st_mtime < cutoff
        except FileNotFoundError:  # removed meanwhile
            return False

    partial = base / PARTIAL_DIR
    if stat.S_ISDIR(_lstat_mode(partial)):
        with os.scandir(partial) as entries:
            found.extend(Path(e.path) for e in entries if e.is_file(follow_symlinks=False)
                         and stale(e))
    candidates: dict[str, Path] = {}
    with os.scandir(base) as entries:
        for entry in entries:
            if (UPLOAD_ID.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
                    and stale(entry)):
                candidates[entry.name] = Path(entry.path)
    ids = list(candidates)
    for first in range(0, len(ids), batch):
        if len(found) >= limit:
            break
        found.extend(candidates[task_id] for task_id in missing(ids[first:first + batch]))
    return found[:limit]


def _lstat_mode(path: Path) -> int:
    try:
        return path.lstat().st_mode
    except FileNotFoundError:
        return 0


def remove_orphans(paths: Iterable[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Delete what :func:`orphans` found (a directory with everything in it, symlinks
    unlinked, never followed). Returns ``(removed, failed)``: the paths now gone, and the
    paths still there with why (the first error met under each). Already gone counts as
    removed."""
    removed: list[Path] = []
    failed: list[tuple[Path, str]] = []
    for path in paths:
        errors: list[str] = []

        def note(_function: Any, where: str, exc: Any, errors=errors) -> None:
            errors.append(f"{where}: {exc[1] if isinstance(exc, tuple) else exc}")

        try:
            if stat.S_ISDIR(_lstat_mode(path)):
                if sys.version_info >= (3, 12):
                    shutil.rmtree(path, onexc=note)
                else:  # 3.11: the same hook, given sys.exc_info()
                    shutil.rmtree(path, onerror=note)
            else:
                path.unlink(missing_ok=True)
        except (OSError, RecursionError) as exc:
            errors.append(f"{path}: {exc!r}")
        if _lstat_mode(path) == 0:
            removed.append(path)
        else:
            failed.append((path, errors[0] if errors else "still there"))
    return removed, failed
