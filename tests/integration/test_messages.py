"""The Celery messages the store pushes are what kombu itself would publish, and cost one
round trip together with the envelope."""

from __future__ import annotations

import base64
import json

from celery_app import create_celery
from celery_app.messages import DELIVERY_HEADER, MessageBuilder
from celery_app.settings import Settings


def _decoded(raw: str) -> dict:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def test_built_message_matches_a_real_kombu_publish(env):
    celery = create_celery(Settings(redis_url=env.url))
    kwargs = {"to": "user@example.com", "n": 2**60}
    celery.send_task("echo", kwargs=kwargs, task_id="t-1", queue="high",
                     soft_time_limit=30, time_limit=40)
    published = _decoded(env.redis.rpop("high"))
    built = _decoded(MessageBuilder(celery, 10).build(
        task_id="t-1", name="echo", kwargs=kwargs, queue="high", delivery="d", timeout=30))

    assert built["headers"].pop(DELIVERY_HEADER) == "d"
    direct_delivery = published["headers"].pop(DELIVERY_HEADER)  # added for direct publishes
    assert env.redis.hget("tq:task:t-1", "delivery") == direct_delivery
    for message in (published, built):
        message["headers"].pop("origin")
        message["properties"].pop("delivery_tag")
    published["properties"].pop("reply_to")
    built["properties"].pop("reply_to")
    assert built == published


def test_submit_is_one_redis_round_trip(env):
    env.submit(type="echo")  # scripts loaded, connection open
    with env.round_trips() as sent:
        for _ in range(10):
            env.submit(type="echo", payload={"x": 1}, priority="high")
    assert len(sent) == 10, "each submit must be exactly one round trip"
