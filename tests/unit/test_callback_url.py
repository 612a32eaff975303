"""The ``callback_url`` grammar the document states is exactly what the check accepts, and
every URL it accepts is one Python's URL parser (and so any client) can read."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.api.schemas import CALLBACK_URL_PATTERN, _absolute_http_url


@settings(max_examples=500, deadline=None)
@given(st.from_regex(CALLBACK_URL_PATTERN, fullmatch=True).filter(lambda u: u.isascii()))
def test_every_url_of_the_documented_grammar_is_accepted_and_parses(url):
    if any(c.isspace() for c in url):  # the check refuses whitespace before the grammar
        return
    _absolute_http_url(url)
    parts = urlsplit(url)  # raises on a bracketed host that is not an IP address
    assert parts.scheme in ("http", "https") and parts.hostname
    if url.split("//", 1)[1].startswith("["):
        ipaddress.ip_address(parts.hostname)
    if parts.port is not None:
        assert 1 <= parts.port <= 65535


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:54321/hook", "http://localhost:8080/hook", "http://[::ffff:127.0.0.1]:9/h",
    "https://hooks.example.com/taskqueue?x=1&y=%20#f", "http://[2001:db8::1]/", "http://a-b.c./",
])
def test_ordinary_callback_urls_are_accepted(url):
    _absolute_http_url(url)


@pytest.mark.parametrize("url", [
    "http://0*", "http://[::::]/", "http://[1.2.3.4]/", "http://[::01.2.3.4]/",
    "http://example.com:70000/", "http://", "http://user@host/", "http://a_b.com/",
    "ftp://example.com/", "http://exa mple.com/",
])
def test_urls_outside_the_grammar_are_refused(url):
    with pytest.raises(ValidationError):
        _absolute_http_url(url)
