"""gunicorn settings read from the working directory: Prometheus multiprocess mode.

Every web process writes its HTTP metrics to files in ``PROMETHEUS_MULTIPROC_DIR``; ``/metrics``
merges them. The directory is emptied when gunicorn starts and a dead worker's files are
marked, so restarts never double-count.
"""

import os
import shutil
import tempfile


def on_starting(server):
    folder = os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR",
        os.path.join(tempfile.gettempdir(), f"taskqueue-metrics-{os.getpid()}"),
    )
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)


def child_exit(server, worker):
    from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)


def on_exit(server):
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if os.path.basename(folder).startswith("taskqueue-metrics-"):  # ours, not an operator's
        shutil.rmtree(folder, ignore_errors=True)
