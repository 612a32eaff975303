"""Where every Redis client comes from: one Redis, or the master Redis Sentinel names."""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from celery_app.config import celery_config
from celery_app.connection import broker_url, redis_client
from celery_app.settings import Settings

HA = {
    "REDIS_URL": "redis://:s3cr%40t@ignored-host:6379/5",
    "REDIS_SENTINELS": "10.0.0.1:26379, sentinel-b:26380,[::1]:26381",
    "REDIS_SENTINEL_MASTER": "tq",
}


def test_sentinel_addresses_are_parsed_from_a_comma_list():
    settings = Settings.from_env(HA)
    assert settings.sentinel_addresses == [
        ("10.0.0.1", 26379),
        ("sentinel-b", 26380),
        ("::1", 26381),
    ]
    assert Settings().sentinel_addresses == []


@pytest.mark.parametrize(
    "env",
    [
        {"REDIS_SENTINELS": "h:1"},
        {"REDIS_SENTINEL_MASTER": "tq"},
        {"REDIS_SENTINELS": "h1:26379,h2", "REDIS_SENTINEL_MASTER": "tq"},
        {"REDIS_SENTINELS": "h1:port", "REDIS_SENTINEL_MASTER": "tq"},
        {"REDIS_MIN_REPLICAS": "-1"},
        {"REDIS_WAIT_TIMEOUT_MS": "0"},
    ],
)
def test_incomplete_or_malformed_high_availability_settings_are_refused(env):
    with pytest.raises(ValueError):
        Settings.from_env(env)


def test_replica_acknowledgement_defaults_are_off_and_500_ms():
    settings = Settings.from_env({})
    assert settings.redis_min_replicas == 0 and settings.redis_wait_timeout_ms == 500
    assert Settings.from_env({"REDIS_MIN_REPLICAS": "2"}).redis_min_replicas == 2


def test_without_sentinel_every_user_gets_redis_url():
    settings = Settings(redis_url="redis://r:6390/3")
    config = celery_config(settings)
    assert config["broker_url"] == "redis://r:6390/3"
    assert "master_name" not in config["broker_transport_options"]
    client = redis_client(settings)
    assert client.connection_pool.connection_kwargs["port"] == 6390
    assert client.connection_pool.connection_kwargs["db"] == 3


def test_with_sentinel_celery_uses_the_sentinel_transport():
    settings = Settings.from_env(HA)
    expected = (
        "sentinel://:s3cr%40t@10.0.0.1:26379/5;sentinel://:s3cr%40t@sentinel-b:26380/5;"
        "sentinel://:s3cr%40t@[::1]:26381/5"
    )
    assert broker_url(settings) == expected
    config = celery_config(settings)
    assert config["broker_url"] == expected
    options = config["broker_transport_options"]
    assert options["master_name"] == "tq"
    assert options["sentinel_kwargs"]["socket_timeout"] == settings.redis_socket_timeout_seconds
    assert options["queue_order_strategy"] == "priority"
    # Celery's result backend reads envelopes through the store's client: no URL of its own.
    assert config["result_backend"] == "celery_app.backend:EnvelopeBackend"


def test_with_sentinel_the_redis_client_asks_the_sentinels_for_the_master():
    client = redis_client(Settings.from_env(HA))
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "tq"
    assert pool.connection_kwargs["db"] == 5 and pool.connection_kwargs["password"] == "s3cr@t"
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["host"] for s in sentinels] == [
        "10.0.0.1",
        "sentinel-b",
        "::1",
    ]


def test_celery_uses_the_transports_that_survive_losing_redis_with_a_message_held():
    from kombu import Connection

    from celery_app import transport

    plain = celery_config(Settings())
    assert plain["broker_transport"] == "celery_app.transport:Transport"
    ha = celery_config(Settings.from_env(HA))
    assert ha["broker_transport"] == "celery_app.transport:SentinelTransport"
    connection = Connection(ha["broker_url"], transport=ha["broker_transport"])
    assert isinstance(connection.transport, transport.SentinelTransport)
    assert connection.transport.Channel is transport.SentinelChannel
    assert len(connection.alt) == 3
