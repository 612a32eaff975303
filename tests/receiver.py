"""A real webhook receiver for tests: an ``http.server`` thread on a free loopback port."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """One request as the receiver saw it; ``answered`` is the status it managed to send."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None = None


def _peer_gone(connection: socket.socket) -> bool:
    """Whether the sender closed its end (a killed process): nothing can be answered."""
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


@dataclass
class Receiver:
    """Records every request; ``respond(n, request)`` (n counts from 1) picks the status."""

    respond: Callable[[int, Received], int] = lambda n, request: 200
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(self.path, dict(self.headers.items()), self.rfile.read(length))
                with owner._lock:
                    owner.requests.append(request)
                    n = len(owner.requests)
                status = owner.respond(n, request)
                if _peer_gone(self.connection):
                    return
                # Recorded before the answer leaves: the sender can act on it (and a test see
                # that) the moment it arrives.
                request.answered = status
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self.wfile.flush()
                except OSError:  # the sender went away (killed) before the answer
                    request.answered = None

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[Received]:
        """Requests answered with a 2xx."""
        return [r for r in self.requests if r.answered and 200 <= r.answered < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
