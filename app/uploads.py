"""Streaming uploads: multipart files go straight to disk, hashed as they arrive.

:class:`UploadRequest` replaces werkzeug's spooled temporary files with :class:`HashingFile`,
which writes each chunk into ``UPLOAD_DIR/.partial/`` and feeds it to SHA-256 — no file is ever
held whole in memory, or written twice. The view renames the finished file into its task's
directory; anything left behind by a failed request (413 mid-stream, a rejected form) is
deleted when the request ends.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from flask import Flask, g

from celery_app.uploads import PARTIAL_DIR

from .protocol import StrictRequest
from .services import services

#: How much of a file's start its content type is sniffed from (as ``file.process`` does).
SNIFF_BYTES = 8192


class HashingFile:
    """A file being received: written to disk chunk by chunk while its SHA-256 is computed."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=folder, prefix="upload-")
        self.path = Path(name)
        self._file = os.fdopen(descriptor, "w+b")
        self._digest = hashlib.sha256()
        self.size = 0
        self.head = b""  # the first SNIFF_BYTES, for the content type

    def write(self, data: bytes) -> int:
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
        self._digest.update(data)
        self.size += len(data)
        return self._file.write(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def __getattr__(self, name: str) -> Any:  # seek, read, close, … of the underlying file
        return getattr(self._file, name)


class UploadRequest(StrictRequest):
    """The service's request, with multipart files streamed into ``UPLOAD_DIR/.partial``."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None,
                         content_length: int | None = None) -> HashingFile:
        stream = HashingFile(Path(services().settings.upload_dir) / PARTIAL_DIR)
        g.setdefault("partial_uploads", []).append(stream)
        return stream


def init_app(app: Flask) -> None:
    """Use :class:`UploadRequest` and clean up partial files after every request."""
    app.request_class = UploadRequest

    @app.teardown_request
    def remove_partial_uploads(_: BaseException | None) -> None:
        for stream in g.pop("partial_uploads", []):
            stream.close()
            stream.path.unlink(missing_ok=True)  # already moved when the upload succeeded
