"""HTTP edges every request passes through: client text that is not Unicode, bodies over the
limit, and the connection after an early answer.

- **Text.** JSON bodies go through :mod:`celery_app.strictjson`; the rest of what a client
  writes is checked here: the query string (every name and value must be UTF-8 once
  percent-decoded — werkzeug would silently replace or re-quote bad bytes), multipart field
  names, values and file names (:class:`StrictFormDataParser`), and the ``Idempotency-Key``
  header (:func:`idempotency_key`). Each is a 400 naming the parameter, field or header.
- **Chunked bodies** (no ``Content-Length``) are cut by werkzeug at the limit without an
  error; :class:`StrictRequest` reads one byte further and answers 413, as for a declared
  length over the limit.
- **Early answers.** An error answered before the request body was read (413 above all)
  leaves body bytes in flight; closing the socket on them makes the kernel send a reset that
  can destroy the response before the client reads it. :class:`DrainUnreadBody` marks such a
  response ``Connection: close`` and, once the response is written, reads and discards the
  rest of the body for at most :data:`DRAIN_SECONDS` / :data:`DRAIN_MAX_BYTES` before the
  server closes (gunicorn then closes gracefully).
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, Request, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser, MultiPartParser
from werkzeug.http import parse_options_header
from werkzeug.wsgi import LimitedStream

from celery_app.errors import InvalidRequest
from celery_app.strictjson import text_problem

#: After an early error, the rest of the body is discarded for at most this long …
DRAIN_SECONDS = 5.0
#: … and at most this many bytes; a client still sending after that may see a reset.
DRAIN_MAX_BYTES = 256 * 1024 * 1024
#: Bodies the server itself drains for keep-alive without risk (gunicorn drains 64 KiB).
SERVER_DRAIN_BYTES = 64 * 1024
#: ``Idempotency-Key``: 1–255 visible ASCII characters (Stripe's limit).
IDEMPOTENCY_KEY_MAX = 255

_STRICT_UTF8 = "taskqueue-strict-utf-8"


def _strict_utf8_codec(name: str) -> codecs.CodecInfo | None:
    """UTF-8 that ignores the ``errors`` argument: werkzeug decodes form fields with
    ``"replace"``, which would turn invalid bytes into U+FFFD without a word."""
    if name != _STRICT_UTF8.replace("-", "_"):
        return None
    utf8 = codecs.lookup("utf-8")
    return codecs.CodecInfo(
        utf8.encode,
        lambda data, errors="strict": codecs.utf_8_decode(data, "strict", True),
        name=_STRICT_UTF8,
    )


codecs.register(_strict_utf8_codec)


class StrictMultiPartParser(MultiPartParser):
    """Multipart parsing where a field that is not UTF-8 is a 400 naming it."""

    part_name = "multipart"

    def get_part_charset(self, headers: Headers) -> str:
        self.part_name = parse_options_header(headers.get("content-disposition"))[1].get(
            "name", "multipart"
        )
        charset = super().get_part_charset(headers)
        return charset if charset == "iso-8859-1" else _STRICT_UTF8

    def parse(self, stream: Any, boundary: bytes, content_length: int | None) -> Any:
        try:
            return super().parse(stream, boundary, content_length)
        except UnicodeDecodeError:
            raise InvalidRequest(f"{self.part_name}: not valid UTF-8") from None


class StrictFormDataParser(FormDataParser):
    """Form parsing with :class:`StrictMultiPartParser`; form text must be UTF-8."""

    def _parse_multipart(
        self, stream: Any, mimetype: str, content_length: int | None, options: dict[str, str]
    ) -> Any:
        boundary = options.get("boundary", "").encode("ascii", "replace")
        if not boundary:
            raise ValueError("Missing boundary")
        parser = StrictMultiPartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
        )
        form, files = parser.parse(stream, boundary, content_length)
        for name, value in [
            *form.items(multi=True),
            *((n, f.filename or "") for n, f in files.items(multi=True)),
        ]:
            check_text(name, value, "field")
        return stream, form, files


class _MaxLengthStream(LimitedStream):
    """A body without ``Content-Length`` limited to a maximum: reading it whole raises 413
    when more follows the limit (werkzeug's own returns the first ``limit`` bytes)."""

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted and self._stream.read(1):
            raise RequestEntityTooLarge()
        return data


class StrictRequest(Request):
    """Flask's request with strict form parsing and chunked bodies held to the limit."""

    form_data_parser_class = StrictFormDataParser

    @property
    def stream(self) -> Any:  # type: ignore[override]
        cached = self.__dict__.get("_strict_stream")
        if cached is None:
            limit = self.max_content_length
            if (
                "wsgi.input_terminated" in self.environ
                and self.content_length is None
                and limit is not None
            ):
                cached = _MaxLengthStream(self.environ["wsgi.input"], limit, is_max=True)
            else:
                cached = Request.stream.__get__(self)  # werkzeug's cached property
            self.__dict__["_strict_stream"] = cached
        return cached


def check_text(name: str, value: str, what: str) -> None:
    """400 naming ``name`` when ``value`` (or the name itself) is not Unicode text."""
    problem = text_problem(name) or text_problem(value)
    if problem:
        shown = name.encode("utf-8", "backslashreplace").decode()
        raise InvalidRequest(f"{shown}: {what} {problem}")


def check_query_string(raw: str) -> None:
    """Every name and value of a WSGI ``QUERY_STRING`` must be UTF-8 once percent-decoded."""
    try:
        data = raw.encode("latin-1")  # PEP 3333: the raw bytes as latin-1 text
    except UnicodeEncodeError:
        data = raw.encode("utf-8", "surrogatepass")
    for part in data.split(b"&"):
        name, _, value = part.partition(b"=")
        name_bytes = unquote_to_bytes(name.replace(b"+", b" "))
        for piece in (name_bytes, unquote_to_bytes(value.replace(b"+", b" "))):
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError:
                shown = name_bytes.decode("utf-8", "backslashreplace")
                raise InvalidRequest(f"{shown}: query parameter is not valid UTF-8") from None


def idempotency_key() -> str | None:
    """The request's ``Idempotency-Key`` (``None`` when absent), or a 400 saying what is
    wrong with it: 1–255 visible ASCII characters (``!`` to ``~``; an empty value, a space or
    a control character is refused, not ignored)."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    if not 1 <= len(raw) <= IDEMPOTENCY_KEY_MAX or not all("!" <= c <= "~" for c in raw):
        raise InvalidRequest(
            f"Idempotency-Key: must be 1-{IDEMPOTENCY_KEY_MAX} visible ASCII characters"
        )
    return raw


class _Drained:
    """A response body that, once the server has written it and closes it, discards what is
    left of the request body (bounded), so closing the socket resets nothing."""

    def __init__(self, body: Iterable[bytes], environ: dict[str, Any]) -> None:
        self.body = body
        self.environ = environ

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            drain(self.environ["wsgi.input"])


def drain(stream: Any, seconds: float = DRAIN_SECONDS, limit: int = DRAIN_MAX_BYTES) -> int:
    """Read and discard ``stream`` until it ends, ``seconds`` pass or ``limit`` bytes were read;
    returns the bytes discarded."""
    deadline, total = time.monotonic() + seconds, 0
    try:
        while total < limit and time.monotonic() < deadline:
            chunk = stream.read(64 * 1024)
            if not chunk:
                break
            total += len(chunk)
    except (OSError, ValueError):  # the client went away or the server's reader gave up
        pass
    return total


class DrainUnreadBody:
    """WSGI middleware: an error answered to a request whose body may be unread beyond what
    the server drains by itself gets ``Connection: close`` and a bounded drain."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        state: dict[str, bool] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = int(status.split(" ", 1)[0])
            length = environ.get("CONTENT_LENGTH") or ""
            unknown = not length.isdigit()
            large = unknown or int(length) > SERVER_DRAIN_BYTES
            has_body = environ.get("HTTP_TRANSFER_ENCODING") or (length and length != "0")
            if code >= 400 and has_body and (code == 413 or large):
                state["close"] = True
                # gunicorn ignores a Connection header from the app (hop-by-hop) but lets the
                # app ask its response object to close: it then says "Connection: close".
                force_close = getattr(
                    getattr(start_response, "__self__", None), "force_close", None
                )
                if force_close is not None:
                    force_close()
            return start_response(status, headers, exc_info)

        body = self.app(environ, start)
        return _Drained(body, environ) if state.get("close") else body


def init_app(app: Flask) -> None:
    """Install the query-string check and the drain middleware (the request class,
    :class:`StrictRequest`, is installed by ``app.uploads``, which extends it)."""

    @app.before_request
    def query_string_is_text() -> None:
        check_query_string(request.environ.get("QUERY_STRING", ""))

    app.wsgi_app = DrainUnreadBody(app.wsgi_app)  # type: ignore[method-assign]
