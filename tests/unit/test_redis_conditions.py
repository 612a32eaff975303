"""Every Redis error class maps to the condition health reports and a 503 names; anything else
(a bug such as WRONGTYPE or a script error) maps to none, and stays a 500."""

from __future__ import annotations

import pytest
import redis
from redis._parsers.resp2 import _RESP2Parser

from app.errors import REDIS_CONDITIONS, redis_condition


def _reply(line: str) -> redis.RedisError:
    """The exception redis-py raises for the error reply ``line`` (as the server sends it)."""
    return _RESP2Parser(65536).parse_error(line)


@pytest.mark.parametrize(
    ("reply", "condition"),
    [
        ("OOM command not allowed when used memory > 'maxmemory'.", "out of memory"),
        ("READONLY You can't write against a read only replica.", "read-only replica"),
        (
            "MISCONF Redis is configured to save RDB snapshots, "
            "but it's currently unable to persist",
            "cannot persist (MISCONF)",
        ),
        (
            "BUSY Redis is busy running a script. "
            "You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            "busy running a script",
        ),
        ("NOSCRIPT No matching script. Please use EVAL.", "script cache flushed"),
        ("LOADING Redis is loading the dataset in memory", "loading"),
        (
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "replica without master",
        ),
        ("NOREPLICAS Not enough good replicas to write.", "not enough replicas"),
    ],
)
def test_each_refusal_has_its_condition(reply, condition):
    assert redis_condition(_reply(reply)) == condition
    assert condition in REDIS_CONDITIONS


def test_an_unreachable_redis_is_disconnected():
    assert redis_condition(redis.ConnectionError("Connection refused")) == "disconnected"
    assert redis_condition(redis.TimeoutError("Timeout reading")) == "disconnected"


@pytest.mark.parametrize(
    "reply",
    [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "ERR Error running script (call to f_0): @user_script:1: bad argument",
        "ERR unknown command 'FOO'",
    ],
)
def test_a_bug_is_no_condition(reply):
    assert redis_condition(_reply(reply)) is None
