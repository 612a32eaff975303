"""Webhook targets: which addresses are refused, signatures, backoff, the pinned connection."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket

import pytest

from celery_app.settings import Settings
from celery_app.webhook_http import TargetRefused, forbidden_reason, post, resolve
from celery_app.webhooks import backoff_seconds, lease_ms, signature
from tests.receiver import Receiver


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "fe80::1",
        "fc00::1",
        "224.0.0.1",
        "ff02::1",
        "0.0.0.0",
        "::",
        "240.0.0.1",
        "100.64.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",
        "2002:a00:1::",
        "192.0.2.1",
        "198.18.0.1",
    ],
)
def test_loopback_private_link_local_multicast_and_reserved_addresses_are_refused(address):
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address):
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/x",
        "http://127.0.0.1:8080/",
        "http://[::ffff:127.0.0.1]/",
        "https://10.0.0.8/hook",
    ],
)
def test_resolve_refuses_names_and_literals_of_private_addresses(url):
    with pytest.raises(TargetRefused, match="^refused: "):
        resolve(url, allow_private=False)


@pytest.mark.parametrize("url", ["ftp://example.com/", "http:///x", "http://h:99999/"])
def test_resolve_refuses_what_is_not_an_http_url(url):
    with pytest.raises(TargetRefused):
        resolve(url, allow_private=True)


def test_resolve_keeps_host_port_path_and_query_and_pins_the_address():
    target = resolve("https://1.1.1.1:8443/a/b?c=d", allow_private=False)
    assert (target.scheme, target.host, target.port, target.path, target.address) == (
        "https",
        "1.1.1.1",
        8443,
        "/a/b?c=d",
        "1.1.1.1",
    )


def test_the_request_goes_to_the_checked_address_without_a_second_lookup(monkeypatch):
    receiver = Receiver()
    try:
        target = resolve(f"http://localhost:{receiver.port}/hook", allow_private=True)

        lookup = socket.getaddrinfo

        def numeric_only(host, *args, **kwargs):
            ipaddress.ip_address(host)  # a name here would be a second DNS lookup
            return lookup(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
        if target.address != "127.0.0.1":  # localhost → ::1 first on some hosts
            pytest.skip("localhost does not resolve to 127.0.0.1 first here")
        assert post(target, b"{}", {"Content-Type": "application/json"}, 2.0) == 200
        assert receiver.requests[0].headers["Host"] == f"localhost:{receiver.port}"
    finally:
        receiver.close()


def test_the_signature_is_the_hex_hmac_sha256_of_the_exact_body():
    body = '{"event":"task.completed","task":{"id":"é"}}'.encode()
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature("k", body) == f"sha256={expected}"


def test_backoff_doubles_with_jitter_and_is_capped():
    settings = Settings(webhook_backoff_seconds=2, webhook_backoff_max_seconds=30)
    for attempts, base in ((1, 2), (2, 4), (3, 8)):
        delays = [backoff_seconds(settings, attempts) for _ in range(200)]
        assert all(base * 0.5 <= d <= base * 1.5 for d in delays)
        assert max(delays) - min(delays) > base * 0.3  # jittered
    assert all(backoff_seconds(settings, 10) <= 30 for _ in range(50))


def test_a_lease_outlasts_connect_and_read_timeouts():
    assert lease_ms(Settings(webhook_timeout_seconds=5)) == 11_000
