"""GET /metrics: every furiwake process's metrics in Prometheus's text format (core/metrics.py defines them).

With PROMETHEUS_MULTIPROC_DIR set, the answer adds up the files every process wrote there (gunicorn's workers, the
classify worker's children); without it, this process's own registry. The queue depth is counted from the database
at scrape time, so it is true whatever the broker and whichever process died; when the database is down it is left
out and the rest is still served (a scrape must not fail because of what it is measuring).

Rate limits attach to intake and sign-in endpoints only and CSRF to the agents' forms, so neither touches this GET.
With METRICS_TOKEN set, the scraper must send `Authorization: Bearer <token>` (Prometheus: `authorization:
credentials`); unset, the endpoint is open, as is usual on a private network.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from api.problems import problem_response
from api.services import current_runtime
from core.metrics import QUEUE_DEPTH_HELP, QUEUE_DEPTH_NAME
from core.orm import PENDING_STATUSES, Ticket

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)


def metric_files(directory: Path) -> list[str]:
    """The metric files in the directory and in its immediate subdirectories: on one machine every process shares
    one directory; under compose each container writes to a subdirectory of one shared volume (pids repeat across
    containers, so they cannot share a directory) and the API's directory is the volume itself."""
    return sorted(str(path) for pattern in ("*.db", "*/*.db") for path in directory.glob(pattern))


class _Scrape(Collector):
    """One scrape: the processes' metrics, then the queue depth."""

    def __init__(self, metrics_dir: Path | None) -> None:
        self.metrics_dir = metrics_dir

    def collect(self) -> Iterator[Metric]:
        if self.metrics_dir is None:
            yield from REGISTRY.collect()
        else:
            processes: Iterable[Metric] = MultiProcessCollector.merge(metric_files(self.metrics_dir), accumulate=True)
            yield from processes
        depth = queue_depth()
        if depth is not None:
            yield GaugeMetricFamily(QUEUE_DEPTH_NAME, QUEUE_DEPTH_HELP, value=depth)


def queue_depth() -> int | None:
    """Tickets waiting for a route, or None when the database cannot answer."""
    try:
        with current_runtime().sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Ticket)
                                      .where(Ticket.status.in_(PENDING_STATUSES))) or 0)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the other metrics are still worth serving
        log.warning("metrics: queue depth unavailable: %s: %s", type(exc).__name__, exc)
        return None


def _authorized() -> bool:
    token = current_runtime().settings.metrics_token
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@bp.get("/metrics")
def metrics() -> Response:
    if not _authorized():
        return problem_response(401, detail="This endpoint needs Authorization: Bearer <METRICS_TOKEN>.",
                                headers=[("WWW-Authenticate", 'Bearer realm="metrics"')])
    body = generate_latest(_Scrape(current_runtime().settings.metrics_dir))
    return Response(body, mimetype=None, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
