"""The Redis key schema: literal names are part of the data format, so they are pinned here."""

from __future__ import annotations

import pytest

from celery_app import keys, model

CELERY_NAMES = {*model.QUEUES, "unacked", "unacked_index", "unacked_mutex", "_kombu.binding.celery"}


def test_task_key_is_prefixed_with_tq_task():
    assert keys.task("abc") == "tq:task:abc"
    assert keys.task("task-1754556928-12a41dbec") == "tq:task:task-1754556928-12a41dbec"


def test_index_key_joins_sort_and_filter():
    assert keys.index("created", "state:pending") == "tq:idx:created:state:pending"
    assert keys.index("priority", "type:echo") == "tq:idx:priority:type:echo"


def test_index_filter_defaults_to_all():
    assert keys.index("updated") == "tq:idx:updated:all"


def test_singleton_keys_have_fixed_names():
    assert keys.delayed() == "tq:delayed"
    assert keys.delayed_messages() == "tq:delayed:msg"
    assert keys.events() == "tq:events"
    assert keys.dlq() == "tq:dlq"
    assert keys.health() == "tq:health"
    assert keys.stats() == "tq:stats"
    assert keys.workers() == "tq:workers"
    assert keys.gates() == "tq:gates"
    assert keys.purged("abc") == "tq:purged:abc"


def test_gate_fields_name_their_kind_and_subject():
    fields = [keys.worker_gate("celery@h"), keys.queue_gate("high"), keys.limit_gate("email")]
    assert fields == ["worker:celery@h", "queue:high", "limit:email"]
    # a worker, a queue and a type of the same name never share a field
    assert len({keys.worker_gate("x"), keys.queue_gate("x"), keys.limit_gate("x")}) == 3


def test_parameterised_keys_embed_their_argument():
    assert keys.idempotency("k-1") == "tq:idem:k-1"
    assert keys.batch_idempotency("k-1") == "tq:idem-batch:k-1"
    assert keys.acked() == "tq:acked"
    assert keys.limit_rate("email") == "tq:limit:rate:email"
    assert keys.limit_running("email") == "tq:limit:running:email"
    assert keys.worker("celery@host") == "tq:worker:celery@host"
    assert keys.lock("promoter") == "tq:lock:promoter"


def test_webhook_and_audit_keys_have_fixed_names():
    assert keys.webhooks() == "tq:webhooks"
    assert keys.webhook("1764460000000-0:abc") == "tq:webhook:1764460000000-0:abc"
    assert keys.audit() == "tq:audit"
    assert keys.metrics("webhooks") == "tq:metrics:webhooks"


def test_sorts_are_created_updated_priority():
    assert keys.SORTS == ("created", "updated", "priority")


def test_queue_lists_name_the_four_kombu_priority_lists():
    assert keys.queue_lists("low") == ["low", "low\x06\x163", "low\x06\x166", "low\x06\x169"]


@pytest.mark.parametrize("queue", model.QUEUES)
def test_queue_lists_start_with_the_plain_queue_name(queue):
    lists = keys.queue_lists(queue)
    assert len(lists) == 4
    assert lists[0] == queue
    assert all(name.startswith(queue) for name in lists)
    assert len(set(lists)) == 4


def test_compound_and_type_keys_are_pinned():
    assert keys.state_index() == "tq:idx:state"
    assert keys.updated_index("echo") == "tq:idx:updated:type:echo"
    assert keys.types() == "tq:types"
    assert keys.metrics("executions") == "tq:metrics:executions"


def test_each_status_is_a_contiguous_run_of_state_ranks():
    for status in model.STATUSES:
        ranks = sorted(keys.STATE_RANK[s] for s, st in model.STATUS_OF_STATE.items()
                       if st == status)
        assert ranks == list(range(ranks[0], ranks[-1] + 1))


ALL_KEYS = [
    keys.task("x"),
    keys.state_index(),
    keys.updated_index("x"),
    keys.types(),
    keys.index("created"),
    keys.index("priority", "status:failed"),
    keys.delayed(),
    keys.delayed_messages(),
    keys.events(),
    keys.dlq(),
    keys.idempotency("x"),
    keys.purged("x"),
    keys.legacy_lease("x"),
    keys.batch_idempotency("x"),
    keys.gates(),
    keys.acked(),
    keys.limit_rate("t"),
    keys.limit_running("t"),
    keys.stats(),
    keys.workers(),
    keys.worker("h"),
    keys.lock("l"),
    keys.webhooks(),
    keys.webhook("1-0:x"),
    keys.audit(),
]


@pytest.mark.parametrize("key", ALL_KEYS)
def test_every_key_of_ours_starts_with_tq_and_is_not_a_celery_name(key):
    assert key.startswith("tq:")
    assert key not in CELERY_NAMES
    assert not key.startswith(("celery-task-meta-", "_kombu.", "unacked"))
    assert key not in {name for queue in model.QUEUES for name in keys.queue_lists(queue)}


def test_all_key_families_are_distinct():
    assert len(set(ALL_KEYS)) == len(ALL_KEYS)
