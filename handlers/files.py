"""``file.process``: read an uploaded file in chunks and describe it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from . import handler
from .errors import PermanentError
from .progress import report

CHUNK_BYTES = 1024 * 1024
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
)


def sniff(head: bytes) -> str:
    """The content type the first bytes show (signatures, else UTF-8 text, else binary)."""
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    if not head:
        return "application/octet-stream"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the sniff boundary
            return "application/octet-stream"
    return "application/json" if head.lstrip()[:1] in (b"{", b"[") else "text/plain"


@handler("file.process")
def process_file(file: str) -> dict[str, Any]:
    """Size, SHA-256, line count and detected content type of an uploaded file.

    ``file`` is relative to ``UPLOAD_DIR`` (read when the task runs).
    """
    root = Path(os.environ.get("UPLOAD_DIR", "./uploads")).resolve()
    path = (root / file).resolve()
    if root not in path.parents:
        raise PermanentError("file is outside the upload directory")
    if not path.is_file():
        raise PermanentError(f"uploaded file {file!r} not found")
    size = path.stat().st_size
    digest, lines, done, head, last = hashlib.sha256(), 0, 0, b"", b""
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
            lines += chunk.count(b"\n")
            done += len(chunk)
            head = head or chunk[:8192]
            last = chunk[-1:]
            report(100 * done / size if size else 100)
    if last and last != b"\n":
        lines += 1  # a last line without a newline still counts
    return {"size": size, "sha256": digest.hexdigest(), "lines": lines,
            "content_type": sniff(head)}
