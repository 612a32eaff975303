"""``process_*`` and ``python_*`` metrics of every web process, under gunicorn too.

prometheus_client's multiprocess mode drops its process and platform collectors: one worker
answers a scrape, and it can only measure itself. Here the answering process reads
``/proc/<pid>`` of every web process — the gunicorn master and each of its workers, found in
the master's ``/proc`` children list — with prometheus_client's own
:class:`~prometheus_client.ProcessCollector`, and labels each sample with ``pid``. ``python_info``
comes from :class:`~prometheus_client.PlatformCollector` (one interpreter for all of them).
Outside gunicorn the only web process is this one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import Metric


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
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)},
                                      sample.value)
        yield from families.values()
        yield from PlatformCollector(registry=None).collect()
