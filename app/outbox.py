"""One WebSocket's writes, from any thread, in order and without blocking.

Every write to a socket — the hub's event frames, the connection thread's frames,
simple-websocket's own pings, pongs and close frames — goes through that connection's
:class:`Outbox`: sent at once when the socket takes it, else queued for the connection's own
thread to flush with a deadline. Frames never interleave, a partial send never cuts one, and
a client that stops reading is dropped instead of blocking anyone.
"""

from __future__ import annotations

import collections
import select
import socket
import threading
import time
from typing import Any

#: Bytes a connection may have waiting to be sent before it is dropped as too slow.
MAX_BACKLOG_BYTES = 4 * 1024 * 1024
#: A client that accepts nothing for this long while frames wait is dropped.
SEND_TIMEOUT_SECONDS = 5.0


def text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed, final text frame (server to client, RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class Outbox:
    """Ordered, non-blocking writes to one socket from any thread; only the connection's own
    thread ever blocks, in :meth:`flush`."""

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self.lock = threading.Lock()
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_bytes = 0
        self._flushing = False
        self.wake = threading.Event()
        self.dropped: str | None = None

    def write(self, data: bytes) -> None:
        with self.lock:
            self.write_locked(data)

    def write_locked(self, data: bytes) -> None:
        """Send now if the socket takes it, else queue it (caller holds :attr:`lock`)."""
        if self.dropped:
            return
        if not self._pending and not self._flushing:
            try:
                sent = self.raw.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._drop("connection lost")
                return
            if sent == len(data):
                return
            data = data[sent:]
        if self._pending_bytes + len(data) > MAX_BACKLOG_BYTES:
            self._drop("backlog overflow")
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        self.wake.set()

    def _drop(self, why: str) -> None:
        self.dropped = why
        self.wake.set()

    def flush(self) -> None:
        """Send everything queued (connection thread only); drop a client that stalls."""
        while True:
            with self.lock:
                if not self._pending or self.dropped:
                    self._flushing = False
                    return
                data = self._pending.popleft()
                self._pending_bytes -= len(data)
                self._flushing = True
            if not self._send_all(data):
                with self.lock:
                    self._drop("send timed out")
                    self._flushing = False
                return

    def _send_all(self, data: bytes) -> bool:
        deadline = time.monotonic() + SEND_TIMEOUT_SECONDS
        view = memoryview(data)
        poller = select.poll()  # not select(): descriptors above 1024 are normal here
        poller.register(self.raw, select.POLLOUT)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                return False
            try:
                view = view[self.raw.send(view, socket.MSG_DONTWAIT):]
            except BlockingIOError:
                continue
            except OSError:
                return False
        return True


class _OutboxSocket:
    """What simple-websocket sees as its socket: reads go to the socket, writes to the outbox."""

    def __init__(self, raw: socket.socket, outbox: Outbox) -> None:
        self._raw, self._outbox = raw, outbox

    def send(self, data: bytes) -> int:
        self._outbox.write(bytes(data))
        return len(data)

    sendall = send

    def __getattr__(self, name: str) -> Any:  # recv, fileno, close, …
        return getattr(self._raw, name)


def attach_outbox(ws: Any) -> Outbox:
    """Route all of ``ws``'s writes through a new outbox."""
    outbox = Outbox(ws.sock)
    ws.sock = _OutboxSocket(ws.sock, outbox)
    return outbox
