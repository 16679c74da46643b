"""gunicorn's configuration module (`gunicorn --config python:api.gunicorn_conf ...`): the hooks the API needs in
gunicorn's master process. The command line keeps every other setting (bind, workers), as before.

With PROMETHEUS_MULTIPROC_DIR set, each worker writes its metrics to files named by its pid (core/metrics.py); when
gunicorn replaces a worker (max-requests, a timeout, a crash) the dead worker's live gauges must stop counting.
Its counters stay: a counter's total includes what dead processes counted.
"""

from __future__ import annotations

from typing import Any

from core.config import Settings


def child_exit(_server: Any, worker: Any) -> None:
    """Runs in the master after a worker exits (the master's environment is its workers')."""
    metrics_dir = Settings.from_env().metrics_dir
    if metrics_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, str(metrics_dir))
