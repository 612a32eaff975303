"""Where uploaded files live: ``UPLOAD_DIR/<task_id>/<sanitised name>``.

Both processes use this: the web process writes a file, a worker's ``file.process`` reads it,
and purging or the retention sweep (in a worker) deletes the task's directory. Every path is
resolved and checked to stay inside the upload directory.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
import unicodedata
from pathlib import Path

UPLOAD_ID = re.compile(r"^task-\d{1,12}-[0-9a-f]{9}$")
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
