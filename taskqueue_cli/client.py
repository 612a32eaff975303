"""The service seen from outside: HTTP calls (httpx) and ``/ws`` connections (websockets).

Every failure becomes one of two exceptions, which :mod:`.main` turns into exit statuses:
:class:`ApiError` (the service answered with an error: its ``{"error","message"}`` body, exit 3)
and :class:`Unreachable` (no answer at all: refused, DNS, timeout, not an HTTP server; exit 4).
Credentials go in headers — ``X-API-Key`` and ``Authorization: Bearer`` — on HTTP and on the
WebSocket handshake alike (contract §8), never in a URL that a proxy could log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

#: Seconds to wait for a TCP connection, and for each read or write once connected.
CONNECT_TIMEOUT_SECONDS = 5.0
IO_TIMEOUT_SECONDS = 30.0
#: Largest WebSocket frame accepted (an event carries an error text at most, not a result).
MAX_FRAME_BYTES = 4 * 1024 * 1024
USER_AGENT = "taskqueue-cli"


class ApiError(Exception):
    """The service answered with an HTTP error; ``message`` is its body's ``message``."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


class Dropped(OSError):
    """An open WebSocket connection ended (closed by the server, or the network)."""


class Unreachable(Exception):
    """Nothing usable answered at ``url`` (``reason`` says what happened)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the service at {url}: {reason}")
        self.url, self.reason = url, reason


@dataclass(frozen=True)
class Reply:
    """A successful answer: HTTP status, the parsed JSON body, its exact text, and the
    server's clock from the ``Date`` header (epoch milliseconds; ``None`` without one)."""

    status: int
    body: Any
    text: str
    date_ms: int | None


def error_of(status: int, text: str, reason: str = "") -> ApiError:
    """An :class:`ApiError` from an error response's body (the contract's JSON shape, §9)."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return ApiError(status, str(body.get("error", reason)), body["message"])
    snippet = " ".join(text.split())[:200]
    return ApiError(
        status, reason, f"HTTP {status} {reason}".strip() + (f": {snippet}" if snippet else "")
    )


class ProgressReader:
    """A binary file that reports how many bytes were read from it (the upload bar).

    httpx streams multipart file parts by calling ``read`` in 64 KiB chunks and sizes them with
    ``fileno``/``seek``/``tell``, so the request keeps its ``Content-Length``."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None]) -> None:
        self.raw, self.on_read, self.sent = raw, on_read, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.sent += len(chunk)
        self.on_read(self.sent)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self.raw.seek(offset, whence)
        self.sent = position
        return position

    def tell(self) -> int:
        return self.raw.tell()

    def fileno(self) -> int:
        return self.raw.fileno()


class Client:
    """One service at ``url`` (scheme, host, port and an optional path prefix)."""

    def __init__(self, url: str, api_key: str | None = None, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key:
            self.headers["X-API-Key"] = api_key
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        timeout = httpx.Timeout(IO_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def request(self, method: str, path: str, **options: Any) -> Reply:
        """Send one request; return the :class:`Reply` of a 2xx answer.

        Raises :class:`ApiError` for any other status and :class:`Unreachable` when no HTTP
        answer came (``options`` are httpx's: ``json``, ``params``, ``headers``, ``files``…)."""
        try:
            response = self.http.request(method, path, **options)
        except httpx.TransportError as exc:
            raise Unreachable(self.url, describe(exc)) from None
        if not response.is_success:
            raise error_of(response.status_code, response.text, response.reason_phrase)
        try:
            body = response.json()
        except ValueError:
            raise ApiError(
                response.status_code,
                "Bad Response",
                f"{method} {path} answered {response.status_code} without JSON; "
                f"is {self.url} a taskqueue service?",
            ) from None
        return Reply(response.status_code, body, response.text, server_clock_ms(response))

    def get(self, path: str, **params: Any) -> Reply:
        """``GET path?params`` (``None`` values left out)."""
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=query)

    def upload(self, file: Path, form: dict[str, str], on_read: Callable[[int], None]) -> Reply:
        """``POST /api/v1/tasks/upload``: the file streamed from disk, ``on_read(bytes_sent)``
        called as it goes; ``form`` holds the other multipart fields."""
        with file.open("rb") as raw:
            part = (file.name, ProgressReader(raw, on_read), "application/octet-stream")
            return self.request("POST", "/api/v1/tasks/upload", data=form, files={"file": part})

    def ws_url(self, path: str, params: dict[str, str]) -> str:
        """``ws://``/``wss://`` URL of ``path`` under this service's prefix."""
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = urlencode({k: v for k, v in params.items() if v})
        return urlunsplit((scheme, parts.netloc, parts.path + path, query, ""))

    def websocket(self, path: str, params: dict[str, str]) -> Socket:
        """An open WebSocket; a refused handshake raises :class:`ApiError` (401, 403, 400…).

        ``websockets`` is imported here, not at start-up: most commands never need it."""
        from websockets import exceptions as ws_errors
        from websockets.sync.client import connect

        url = self.ws_url(path, params)
        try:
            return Socket(
                connect(
                    url,
                    additional_headers=self.headers,
                    compression=None,
                    open_timeout=CONNECT_TIMEOUT_SECONDS + IO_TIMEOUT_SECONDS,
                    max_size=MAX_FRAME_BYTES,
                    user_agent_header=USER_AGENT,
                )
            )
        except ws_errors.InvalidStatus as exc:
            response = exc.response
            body = (response.body or b"").decode("utf-8", "replace")
            raise error_of(response.status_code, body, response.reason_phrase) from None
        except (OSError, TimeoutError, ws_errors.WebSocketException) as exc:
            raise Unreachable(self.url, describe(exc)) from None

    def close(self) -> None:
        self.http.close()


class Socket:
    """An open ``/ws`` connection: text frames in, :class:`Dropped` when it ends."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def recv(self, timeout: float) -> str:
        """The next frame; ``TimeoutError`` after ``timeout`` seconds without one."""
        from websockets.exceptions import ConnectionClosed

        try:
            return self.connection.recv(timeout=timeout, decode=True)
        except ConnectionClosed as exc:
            raise Dropped(str(exc)) from None

    def close(self) -> None:
        self.connection.close()


def server_clock_ms(response: httpx.Response) -> int | None:
    """The ``Date`` header as epoch milliseconds (one-second resolution), if present."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


def describe(exc: BaseException) -> str:
    """A one-line reason for a transport failure (never a traceback)."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
