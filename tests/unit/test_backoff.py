"""Retry backoff: the first retry waits RETRY_BACKOFF_SECONDS, each next one doubles,
±10 % jitter, capped by RETRY_BACKOFF_MAX_SECONDS."""

from __future__ import annotations

import random

import pytest
import redis

from celery_app.settings import Settings
from celery_app.store import Store

SAMPLES = 400


def make_store(base: float = 2, cap: float = 300) -> Store:
    # Port 1: nothing listens there, so any accidental network I/O would fail loudly and fast.
    client = redis.Redis(port=1, socket_connect_timeout=0.1, socket_timeout=0.1)
    return Store(
        client, Settings(retry_backoff_seconds=base, retry_backoff_max_seconds=cap), builder=None
    )


@pytest.fixture(scope="module")
def store() -> Store:
    return make_store()


def test_constructing_a_store_does_no_network_io():
    store = make_store()
    assert store.settings.retry_backoff_seconds == 2


@pytest.mark.parametrize("failures", range(1, 9))
def test_backoff_is_exponential_within_ten_percent_and_capped(store, failures):
    nominal = 2 * 2 ** (failures - 1)
    low, high = 0.9 * nominal, min(300, 1.1 * nominal)
    samples = [store.backoff_seconds(failures) for _ in range(SAMPLES)]
    assert all(low <= value <= high for value in samples), (failures, min(samples), max(samples))
    assert max(samples) <= 300


def test_first_retry_waits_about_the_base_delay(store):
    samples = [store.backoff_seconds(1) for _ in range(SAMPLES)]
    assert all(1.8 <= value <= 2.2 for value in samples)
    assert 1.9 < sum(samples) / len(samples) < 2.1


@pytest.mark.parametrize("failures", range(1, 8))
def test_jitter_actually_varies(store, failures):
    samples = {store.backoff_seconds(failures) for _ in range(50)}
    assert len(samples) > 1


def test_jitter_spans_most_of_the_ten_percent_band(store):
    samples = [store.backoff_seconds(3) / 8 for _ in range(2000)]
    assert min(samples) < 0.92 and max(samples) > 1.08


@pytest.mark.parametrize("failures", [9, 10, 20, 50])
def test_backoff_never_exceeds_the_cap(store, failures):
    assert all(store.backoff_seconds(failures) == 300 for _ in range(SAMPLES))


def test_small_cap_applies():
    store = make_store(base=1, cap=10)
    assert all(0.9 <= store.backoff_seconds(1) <= 1.1 for _ in range(SAMPLES))
    assert all(7.2 <= store.backoff_seconds(4) <= 8.8 for _ in range(SAMPLES))
    for failures in range(5, 12):
        assert all(store.backoff_seconds(failures) <= 10 for _ in range(SAMPLES))
    assert all(store.backoff_seconds(6) == 10 for _ in range(SAMPLES))


def test_backoff_is_seedable_through_random():
    store = make_store()
    saved = random.getstate()
    try:
        random.seed(1234)
        first = [store.backoff_seconds(n) for n in range(1, 9)]
        random.seed(1234)
        assert [store.backoff_seconds(n) for n in range(1, 9)] == first
    finally:
        random.setstate(saved)
