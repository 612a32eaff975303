"""Settings from the environment."""

from __future__ import annotations

import pytest

from celery_app.settings import MIB, Settings


def test_empty_environment_gives_the_documented_defaults():
    settings = Settings.from_env({})
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.port == 8080
    assert settings.auth_enabled is False
    assert settings.api_keys == ""
    assert settings.jwt_secret_key == ""
    assert settings.upload_dir == "./uploads"
    assert settings.max_upload_bytes == 100 * 1024 * 1024
    assert settings.max_payload_bytes == 1024 * 1024
    assert settings.task_retention_seconds == 7 * 24 * 3600
    assert settings.retry_backoff_seconds == 2
    assert settings.retry_backoff_max_seconds == 300
    assert settings.worker_heartbeat_seconds == 2


def test_from_env_with_empty_mapping_equals_the_plain_defaults():
    assert Settings.from_env({}) == Settings()


def test_mib_is_a_binary_megabyte():
    assert MIB == 1_048_576


def test_integers_are_parsed_as_int():
    settings = Settings.from_env(
        {"PORT": "9090", "MAX_UPLOAD_BYTES": "1024", "TASK_RETENTION_SECONDS": "60"}
    )
    assert settings.port == 9090 and type(settings.port) is int
    assert settings.max_upload_bytes == 1024
    assert settings.task_retention_seconds == 60


def test_floats_are_parsed_as_float():
    settings = Settings.from_env(
        {
            "RETRY_BACKOFF_SECONDS": "0.5",
            "RETRY_BACKOFF_MAX_SECONDS": "30",
            "WORKER_HEARTBEAT_SECONDS": "1.25",
        }
    )
    assert settings.retry_backoff_seconds == 0.5
    assert (
        settings.retry_backoff_max_seconds == 30.0
        and type(settings.retry_backoff_max_seconds) is float
    )
    assert settings.worker_heartbeat_seconds == 1.25


@pytest.mark.parametrize("raw", ["true", "True", "TRUE", "1", "yes", "on", " true "])
def test_truthy_strings_enable_a_bool(raw):
    assert Settings.from_env({"AUTH_ENABLED": raw}).auth_enabled is True


@pytest.mark.parametrize("raw", ["false", "False", "0", "no", "off"])
def test_falsy_strings_disable_a_bool(raw):
    assert Settings.from_env({"AUTH_ENABLED": raw}).auth_enabled is False


def test_strings_are_taken_verbatim():
    settings = Settings.from_env(
        {"REDIS_URL": "redis://r:6380/3", "UPLOAD_DIR": "/data/up", "API_KEYS": "k1:admin,k2:user"}
    )
    assert settings.redis_url == "redis://r:6380/3"
    assert settings.upload_dir == "/data/up"
    assert settings.api_keys == "k1:admin,k2:user"


def test_variable_names_are_the_upper_case_field_names():
    assert Settings.from_env({"port": "1234"}).port == 8080
    assert Settings.from_env({"PORT": "1234"}).port == 1234


def test_empty_string_keeps_the_default():
    settings = Settings.from_env(
        {"PORT": "", "REDIS_URL": "", "AUTH_ENABLED": "", "RETRY_BACKOFF_SECONDS": ""}
    )
    assert settings == Settings()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("PORT", "eighty"),
        ("PORT", "80.5"),
        ("MAX_PAYLOAD_BYTES", "1MiB"),
        ("RETRY_BACKOFF_SECONDS", "two"),
    ],
)
def test_an_invalid_number_raises_value_error_naming_the_variable(name, raw):
    with pytest.raises(ValueError, match=name) as caught:
        Settings.from_env({name: raw})
    assert repr(raw) in str(caught.value)


def test_unrelated_variables_are_ignored():
    assert Settings.from_env({"HOME": "/root", "EXTRA_THING": "x"}) == Settings()


def test_settings_are_immutable_but_can_be_copied_with_overrides():
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]
    changed = settings.with_overrides(port=1)
    assert changed.port == 1 and settings.port == 8080


def test_visibility_timeout_exceeds_the_longest_hard_time_limit():
    for grace in (0, 10, 600):
        settings = Settings(hard_timeout_grace_seconds=grace)
        assert settings.visibility_timeout_seconds > 86_400 + grace


def test_visibility_timeout_follows_the_grace_setting():
    assert (
        Settings(hard_timeout_grace_seconds=100).visibility_timeout_seconds
        - Settings(hard_timeout_grace_seconds=10).visibility_timeout_seconds
        == 90
    )


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("AUTH_ENABLED", "ture"),
        ("AUTH_ENABLED", "enabled"),
        ("RETRY_BACKOFF_SECONDS", "nan"),
        ("RETRY_BACKOFF_MAX_SECONDS", "inf"),
    ],
)
def test_a_misspelt_flag_or_non_finite_number_is_refused(name, raw):
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: raw})
