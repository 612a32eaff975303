"""``/metrics``: HTTP metrics from prometheus-flask-exporter plus cluster-wide task metrics.

Task counters are incremented by the store's Lua scripts in whichever process made the
transition (web or worker) and read from Redis at scrape time, so every web process reports the
same values. Under gunicorn (``PROMETHEUS_MULTIPROC_DIR`` set by ``gunicorn.conf.py``) the HTTP
metrics of all web processes are merged by prometheus_client's multiprocess collector.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Request, Response, request
from prometheus_client import CollectorRegistry, GCCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from celery_app.metrics import (
    DURATION_BUCKETS,
    WAIT_BUCKETS,
    fold_events,
    oldest_waiting_seconds,
    read_counters,
)
from celery_app.model import QUEUES
from celery_app.runtime import Runtime
from celery_app.webhooks import OUTCOMES

from .process_metrics import (
    GcCounters,
    WebProcessesCollector,
    gunicorn_processes,
    this_process,
)


class ClusterCollector:
    """Reads the cluster-wide task metrics from Redis at scrape time (a few round trips)."""

    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime()
        fold_events(runtime.scripts)
        counters = read_counters(runtime.redis)
        yield _counter("taskqueue_tasks_submitted", "Tasks submitted",
                       ["type", "priority"], counters["submitted"])
        yield _counter("taskqueue_tasks_completed", "Tasks that reached a final state",
                       ["type", "status"], counters["completed"])
        yield _counter("taskqueue_task_retries", "Automatic retries scheduled after a failed "
                       "execution", ["type"], counters["retries"])
        yield _counter("taskqueue_tasks_throttled", "Tasks a limit of their type held back "
                       "(counted once per wait)", ["type"], counters["throttled"])
        yield _histogram("taskqueue_task_duration_seconds",
                         "Execution time of each task execution", ["type"],
                         counters["duration"], DURATION_BUCKETS)
        yield _histogram("taskqueue_task_queue_wait_seconds",
                         "Time from being queued (submit, due time, retry) to the start of an "
                         "execution", ["type", "priority"], counters["queue_wait"], WAIT_BUCKETS)
        oldest = GaugeMetricFamily("taskqueue_queue_oldest_age_seconds",
                                   "How long the oldest message waiting in each queue has waited",
                                   labels=["priority"])
        for queue, age in oldest_waiting_seconds(runtime.redis).items():
            oldest.add_metric([queue], age)
        yield oldest
        yield _counter("taskqueue_webhook_deliveries", "Completion webhook attempts by outcome",
                       ["outcome"], {o: counters["webhooks"].get(o, 0) for o in OUTCOMES})
        depth = GaugeMetricFamily("taskqueue_queue_depth", "Messages waiting per priority queue",
                                  labels=["priority"])
        for queue, count in runtime.listing.queue_depths().items():
            depth.add_metric([queue], count)
        yield depth
        paused = GaugeMetricFamily("taskqueue_queue_paused",
                                   "1 while the queue is paused (POST /admin/queues/{name}/pause)",
                                   labels=["priority"])
        paused_queues = runtime.workers.paused_queues()
        for queue in QUEUES:
            paused.add_metric([queue], 1 if queue in paused_queues else 0)
        yield paused
        yield GaugeMetricFamily("taskqueue_active_workers", "Workers with a live heartbeat",
                                value=runtime.workers.count())
        yield GaugeMetricFamily("taskqueue_dlq_size", "Entries in the dead-letter queue",
                                value=runtime.dead_letters.size())


def _counter(name: str, doc: str, labels: list[str], values: dict[str, str]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for field, count in sorted(values.items()):
        family.add_metric(field.split("\t"), int(count))
    return family


def _histogram(name: str, doc: str, labels: list[str], fields: dict[str, str],
               bounds: tuple[float, ...]) -> Metric:
    """Per-bucket counts (``<labels…>\\t<bucket index>``) and sums (``<labels…>\\tsum``) as
    cumulative Prometheus buckets."""
    family = HistogramMetricFamily(name, doc, labels=labels)
    by_labels: dict[tuple[str, ...], dict[str, str]] = {}
    for field, value in fields.items():
        *values, part = field.split("\t")
        by_labels.setdefault(tuple(values), {})[part] = value
    for values, parts in sorted(by_labels.items()):
        cumulative, buckets = 0, []
        for index, bound in enumerate([*(f"{b}" for b in bounds), "+Inf"], start=1):
            cumulative += int(parts.get(str(index), 0))
            buckets.append((bound, cumulative))
        family.add_metric(list(values), buckets, sum_value=float(parts.get("sum", 0)))
    return family


class _GunicornMetrics(GunicornInternalPrometheusMetrics):
    """The exporter's multiprocess registry is built per scrape; add the cluster collector."""

    def __init__(self, app: Flask, cluster: ClusterCollector, **kwargs: Any) -> None:
        self.cluster = cluster
        self.gc = GcCounters()
        app.before_request(self.gc.refresh)
        super().__init__(app, **kwargs)

    def generate_metrics(self, accept_header: str | None = None,
                         names: list[str] | None = None) -> tuple[str, str]:
        self.gc.refresh()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(self.cluster)
        registry.register(WebProcessesCollector(gunicorn_processes))
        if names:
            registry = registry.restricted_registry(names)
        encoder, content_type = choose_encoder(accept_header)
        return encoder(registry).decode("utf-8"), content_type


#: HTTP methods that keep their own label value; anything a client invents is "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The ``url_rule`` label of a request that matched no route (404, and 405 on no route).
UNMATCHED = "unmatched"


def url_rule(request: Request) -> str:
    """The ``url_rule`` label: the matched route's pattern, never the raw path, so the label
    set is bounded by the URL map (``/api/v1/tasks/<task_id:task_id>``; ``unmatched``)."""
    return request.url_rule.rule if request.url_rule is not None else UNMATCHED


def init_app(app: Flask, runtime: Callable[[], Runtime]) -> PrometheusMetrics:
    """Serve ``/metrics`` on ``app``; ``runtime`` gives the current process's Redis nouns.

    HTTP metric labels are bounded whatever clients send: ``url_rule`` by the URL map,
    ``method`` by :data:`KNOWN_METHODS` plus ``other``, ``status`` by HTTP.
    """
    cluster = ClusterCollector(runtime)
    options = {"group_by": url_rule}
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        exporter = _GunicornMetrics(app, cluster, **options)
    else:
        registry = CollectorRegistry()  # per app: tests build many apps in one process
        registry.register(cluster)
        registry.register(WebProcessesCollector(this_process))
        GCCollector(registry=registry)
        exporter = PrometheusMetrics(app, registry=registry, **options)

    @app.after_request  # registered after the exporter's, so it runs before it
    def fold_unknown_methods(response: Response) -> Response:
        if request.method not in KNOWN_METHODS:
            request.method = "other"  # the exporter labels with request.method; the view ran
        return response

    return exporter

