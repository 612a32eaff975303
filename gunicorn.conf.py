"""gunicorn settings read from the working directory: connection limits and Prometheus
multiprocess mode.

- ``keepalive`` (``WEB_KEEPALIVE_SECONDS`` [75]): how long an idle client connection stays
  open. It must be longer than the idle timeout of whatever pools connections in front (AWS
  ALB 60 s, nginx ``keepalive_timeout`` 75 s with ``upstream keepalive``, Google LB 600 s: raise
  it there); otherwise the server closes a connection just as the balancer reuses it and that
  request fails. gunicorn's own default is 2 s.
- ``limit_request_line`` (``WEB_MAX_REQUEST_LINE`` [8190], gunicorn's maximum): URLs up to this
  reach the app, which answers in JSON (a 5,000-character task id is a JSON 404, not
  gunicorn's HTML 414).
- ``control_socket_disable``: gunicorn 24+ opens a control socket at one fixed path in the
  home directory, shared by every gunicorn of the user (a second instance takes it over, the
  first to exit removes it). The service does not use it.
- Every web process writes its HTTP metrics to files in ``PROMETHEUS_MULTIPROC_DIR``;
  ``/metrics`` merges them. The directory is emptied when gunicorn starts and a dead worker's
  files are marked, so restarts never double-count.
"""

import os
import shutil
import tempfile

keepalive = int(os.environ.get("WEB_KEEPALIVE_SECONDS", "75"))
limit_request_line = int(os.environ.get("WEB_MAX_REQUEST_LINE", "8190"))
control_socket_disable = True  # an unknown name to gunicorn 23, which ignores it


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
