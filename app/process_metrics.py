"""``process_*`` and ``python_*`` metrics of every web process, under gunicorn too.

prometheus_client's multiprocess mode drops its process and platform collectors: one worker
answers a scrape, and it can only measure itself. Here the answering process reads
``/proc/<pid>`` of every web process — the gunicorn master and each of its workers, found in
the master's ``/proc`` children list — with prometheus_client's own
:class:`~prometheus_client.ProcessCollector`, and labels each sample with ``pid``. ``python_info``
comes from :class:`~prometheus_client.PlatformCollector` (one interpreter for all of them).

A process's garbage-collector counts cannot be read from outside it, so under gunicorn each
worker copies its own ``gc.get_stats()`` into prometheus_client's multiprocess files as
``python_gc_{objects_collected,objects_uncollectable,collections}_total{pid,generation}``
(:class:`GcCounters`, at most once a second, before a request and before a scrape).
Outside gunicorn the only web process is this one, and prometheus_client's own
:class:`~prometheus_client.GCCollector` reports it.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import Counter, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import Metric

#: How often a worker copies its garbage-collector counts (seconds, at most).
GC_REFRESH_SECONDS = 1.0
_GC_STATS = {
    "collected": "Objects collected during gc",
    "uncollectable": "Uncollectable objects found during GC",
    "collections": "Number of times this generation was collected",
}


def this_process() -> list[int]:
    """Just this process (the development server, tests)."""
    return [os.getpid()]


def gunicorn_processes() -> list[int]:
    """The gunicorn master of this worker and every worker it runs (this one included)."""
    master = os.getppid()
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:  # not Linux, or no CONFIG_PROC_CHILDREN: measure what we can
        return this_process()
    return [master, *sorted(int(child) for child in children)]


class WebProcessesCollector:
    """Process metrics of each web process, labelled ``pid``; ``python_info`` once."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self._pids():
            collector = ProcessCollector(pid=lambda pid=pid: pid, registry=None)
            for family in collector.collect():  # nothing for a process that just ended
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()
        yield from PlatformCollector(registry=None).collect()


class GcCounters:
    """This process's ``gc.get_stats()`` as multiprocess counters labelled ``pid`` and
    ``generation`` (under gunicorn; see the module docstring)."""

    def __init__(self) -> None:
        self._counters = {
            stat: Counter(
                f"python_gc_{'objects_' if stat != 'collections' else ''}{stat}",
                doc,
                ["pid", "generation"],
                registry=None,
            )
            for stat, doc in _GC_STATS.items()
        }
        self._copied: dict[tuple[str, int], int] = {}
        self._next = 0.0

    def refresh(self) -> None:
        """Add what the collector counted since the last copy (at most once a second)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + GC_REFRESH_SECONDS
        pid = str(os.getpid())
        for generation, stats in enumerate(gc.get_stats()):
            for stat, counter in self._counters.items():
                total = stats[stat]
                added = total - self._copied.get((stat, generation), 0)
                child = counter.labels(pid, str(generation))  # a zero is a sample too
                if added > 0:
                    child.inc(added)
                self._copied[(stat, generation)] = total
