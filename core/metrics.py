"""Prometheus metrics: every furiwake metric defined once, and the small functions the entry points call to move
them (docs/operations.md, "Metrics", says what an alarm on each one means).

Many processes count: gunicorn's workers (intake, rate limits, re-routes) and the classify worker's Celery
children (routing, the sweep, the model loaded). prometheus_client's multiprocess mode adds them up: each process
writes its values to files in PROMETHEUS_MULTIPROC_DIR and the API's /metrics merges the files (api/metrics.py).
prometheus_client chooses between that and plain in-memory values when it is first imported, from the environment,
so the directory must be in the environment before this module is imported: `furiwake run` puts it there for its
children, compose in each service's environment. Without it (tests, one process) the default registry is used.

Counts are taken after the commit that makes them true (on_commit): service functions never commit, and a unit of
work that rolls back (a database error retried by the worker) must not count twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from core.orm import utcnow

log = logging.getLogger(__name__)
_PENDING = "furiwake_metrics_on_commit"

TICKETS_RECEIVED = Counter(
    "furiwake_tickets_received_total", "Tickets stored, by intake channel (a repeated request is not counted).",
    ["channel"],
)
TICKETS_ROUTED = Counter(
    "furiwake_tickets_routed_total",
    "Tickets the classify worker decided: status routed or needs_review, the route predicted, the model version.",
    ["status", "route", "model_version"],
)
HELD_FOR_REVIEW = Counter(
    "furiwake_tickets_held_for_review_total",
    "Tickets the classify worker put in needs_review, by reason (core.orm.REVIEW_REASONS).", ["reason"],
)
ROUTING_LATENCY = Histogram(
    "furiwake_routing_latency_seconds", "From a ticket's intake (created_at) to the commit of its route.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
CONFIDENCE = Histogram(
    "furiwake_routing_confidence", "The model's confidence in the route it predicted, per ticket.", ["model_version"],
    buckets=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
SWEEP_REQUEUED = Counter(
    "furiwake_sweep_requeued_total", "Tickets the sweep found pending too long and sent to the workers again.",
)
RATE_LIMITED = Counter(
    "furiwake_rate_limited_total", "Requests refused with 429, by limit (intake or signin).", ["scope"],
)
ROUTE_OVERRIDES = Counter(
    "furiwake_route_overrides_total", "Agents' re-routes away from the model's route: from the model's, to theirs.",
    ["from_route", "to_route", "model_version"],
)
# livesum: each classify process sets 1 on the version it serves, so the sum over live processes is how many
# processes serve each version; a process's value goes when it exits (mark_process_dead).
WORKER_MODEL = Gauge(
    "furiwake_worker_model_processes", "Classify worker processes serving each model version.", ["version"],
    multiprocess_mode="livesum",
)
# Computed at scrape time from the database by api/metrics.py (not a Gauge written by processes: it must be right
# whatever the broker is, and after a crash).
QUEUE_DEPTH_NAME = "furiwake_queue_depth"
QUEUE_DEPTH_HELP = "Tickets waiting for a route (status received or queued), counted at scrape time."


def on_commit(session: Session, count: Callable[[], None]) -> None:
    """Run `count` once the session's outermost transaction commits; never if it rolls back or is closed."""
    session.info.setdefault(_PENDING, []).append(count)


@event.listens_for(Session, "after_commit")
def _run_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the outer transaction may still roll back
        return
    for count in session.info.pop(_PENDING, ()):
        try:
            count()
        except Exception:  # noqa: BLE001 - the work is committed; a metric must never turn it into an error
            log.exception("could not update a metric")


@event.listens_for(Session, "after_transaction_end")
def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended without a commit (or after it: nothing left)
        session.info.pop(_PENDING, None)


def ticket_received(channel: str) -> None:
    TICKETS_RECEIVED.labels(channel=channel).inc()


def ticket_routed(status: str, route: str, model_version: str, confidence: float, received_at: datetime | None,
                  review_reason: str | None = None) -> None:
    """One ticket's route committed by the classify worker (with the reason it is held for review, if it is)."""
    TICKETS_ROUTED.labels(status=status, route=route, model_version=model_version).inc()
    if review_reason is not None:
        HELD_FOR_REVIEW.labels(reason=review_reason).inc()
    CONFIDENCE.labels(model_version=model_version).observe(confidence)
    if received_at is not None:
        ROUTING_LATENCY.observe(max(0.0, (utcnow() - received_at).total_seconds()))


def sweep_requeued(count: int) -> None:
    SWEEP_REQUEUED.inc(count)


def rate_limited(scope: str) -> None:
    RATE_LIMITED.labels(scope=scope).inc()


def route_overridden(from_route: str, to_route: str, model_version: str | None) -> None:
    ROUTE_OVERRIDES.labels(from_route=from_route, to_route=to_route, model_version=model_version or "none").inc()


def worker_model(version: str, previous: str | None = None) -> None:
    """This process now serves `version` (and no longer `previous`)."""
    if previous is not None and previous != version:
        WORKER_MODEL.labels(version=previous).set(0)
    WORKER_MODEL.labels(version=version).set(1)
