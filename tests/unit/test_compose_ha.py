"""``docker-compose.ha.yml`` wires web and worker to the sentinels it runs."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from celery_app.config import celery_config
from celery_app.settings import Settings
from tests.harness import ROOT

COMPOSE = ROOT / "docker-compose.ha.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_web_and_worker_find_the_master_through_every_sentinel(compose):
    services = compose["services"]
    sentinels = sorted(name for name in services if name.startswith("sentinel-"))
    assert len(sentinels) == 3
    monitored = re.search(
        r"sentinel monitor (\S+) (\S+) (\d+) (\d+)", " ".join(services[sentinels[0]]["command"])
    )
    assert monitored and monitored.group(2) == "redis-master" and monitored.group(4) == "2"
    for name in ("web", "worker"):
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        settings = Settings.from_env(env)
        assert settings.sentinel_addresses == [(s, 26379) for s in sentinels]
        assert settings.redis_sentinel_master == monitored.group(1)
        assert settings.redis_min_replicas == 1
        assert celery_config(settings)["broker_url"].startswith("sentinel://")


def test_the_replica_follows_the_master_and_sentinels_use_the_documented_timings(compose):
    services = compose["services"]
    replica = services["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["redis-master", "6379"]
    command = " ".join(services["sentinel-1"]["command"])
    assert "down-after-milliseconds tq 1000" in command
    assert "failover-timeout tq 5000" in command


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose not installed")
def test_docker_compose_accepts_the_file():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
