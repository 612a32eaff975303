"""The lost-message scan: bounded work per sweep, no re-publish of a message that exists, and
a re-publish — once — of one that exists nowhere (driven sweep by sweep, no worker)."""

from __future__ import annotations

import json

from celery_app.recovery import SCAN_BATCH, LostMessages


def _store(env):
    return env.app.extensions["taskqueue"].celery.runtime.store


def _sweep_until_done(lost: LostMessages, store) -> tuple[int, list[str]]:
    """Sweeps until a round concludes: (sweeps taken, ids re-published)."""
    for sweeps in range(1, 100):
        republished = lost.sweep(store)
        if lost._round is None:
            return sweeps, republished
    raise AssertionError("the round never ended")


def test_a_round_reads_a_bounded_batch_per_sweep_and_republishes_only_lost_messages(env):
    store = _store(env)
    ids = [env.submit(type="echo", payload={"n": n})["id"] for n in range(SCAN_BATCH * 2 + 100)]
    lost = LostMessages(grace_seconds=0, heartbeat_seconds=0)

    env.redis.config_resetstat()
    sweeps, republished = _sweep_until_done(lost, store)
    assert sweeps == 3 and republished == []  # 1,100 messages at 500 per sweep; all exist
    # one LRANGE per (empty) kombu list of the other queues and priorities, three for "low"
    assert int(env.redis.info("commandstats")["cmdstat_lrange"]["calls"]) == 15 + 3

    gone = env.redis.rpop("low")  # kombu popped it and its write to unacked was refused
    lost_id = json.loads(gone)["headers"]["id"]
    assert _sweep_until_done(lost, store)[1] == []  # suspect after one round
    assert _sweep_until_done(lost, store)[1] == [lost_id]  # confirmed by the next
    assert _sweep_until_done(lost, store)[1] == []  # and only once
    assert env.redis.llen("low") == len(ids)
    envelope = env.get(lost_id)
    assert envelope["state"] == "pending" and envelope["attempts"] == 0


def test_nothing_is_scanned_while_no_task_has_waited_past_the_grace(env):
    store = _store(env)
    for n in range(10):
        env.submit(type="echo", payload={"n": n})
    lost = LostMessages(grace_seconds=3600, heartbeat_seconds=0)
    env.redis.config_resetstat()
    assert lost.sweep(store) == [] and lost._round is None
    stats = env.redis.info("commandstats")
    assert "cmdstat_lrange" not in stats and "cmdstat_hscan" not in stats
