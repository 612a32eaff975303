"""One webhook request, SSRF-safe: resolve once, check every address, connect to the checked one.

- The target's host is resolved at delivery time (``getaddrinfo``); if ANY address it resolves to
  is loopback, private, link-local, multicast, reserved, unspecified or not globally routable —
  including such IPv4 addresses inside IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, 6to4, Teredo) — the
  target is refused (:class:`TargetRefused`) before any connection is opened, unless
  ``WEBHOOK_ALLOW_PRIVATE`` is set.
- The connection goes to the address that was checked (no second lookup, so a DNS answer that
  changes between check and connect — DNS rebinding — cannot redirect it). ``Host`` and TLS SNI
  and certificate checks still use the URL's host name.
- Redirects are never followed (``http.client`` does not): a 3xx is an unsuccessful answer.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Response bytes read (and discarded) before the connection is closed.
MAX_RESPONSE_BYTES = 64 * 1024

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The URL may not be requested (a forbidden address, or not an http(s) URL): final."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def forbidden_reason(ip: Address) -> str | None:
    """Why ``ip`` may not receive webhooks (``None`` if it may): the address class, checked
    on the address itself and on any IPv4 address embedded in an IPv6 one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:  # ::ffff:a.b.c.d reaches a.b.c.d: judged as that address
            inner = forbidden_reason(ip.ipv4_mapped)
            return f"{inner} (as {ip})" if inner else None
        for embedded in (ip.sixtofour, ip.teredo and ip.teredo[1]):
            if embedded:
                inner = forbidden_reason(embedded)
                if inner:
                    return f"{inner} (inside {ip})"
    for name in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{name}"):
            return f"{name.replace('_', '-')} address {ip}"
    if not ip.is_global:
        return f"non-global address {ip}"
    return None


def resolve(url: str, allow_private: bool) -> Target:
    """Parse ``url``, resolve its host and check the addresses; :class:`TargetRefused` if not
    allowed, ``OSError`` when the name does not resolve (retryable)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"not an http(s) URL: {url[:100]}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise TargetRefused(f"bad port in URL: {exc}") from None
    infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not allow_private:
        for ip in addresses:
            reason = forbidden_reason(ip)
            if reason:
                raise TargetRefused(f"refused: {parts.hostname} resolves to a {reason}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body`` to the checked target; the HTTP status. Raises ``OSError`` or
    ``http.client.HTTPException`` for a refused connection, a timeout or a broken answer."""
    connection_class = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = connection_class(target, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return response.status
    finally:
        connection.close()
