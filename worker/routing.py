"""Routing a batch of tickets: plain functions, no Celery, so tests and benchmarks call them directly."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.orm import PENDING_STATUSES, Ticket, utcnow
from core.text import prepare_many, ticket_text

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 2000


@dataclass
class RoutingOutcome:
    routed: list[str] = field(default_factory=list)
    needs_review: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unknown, or already routed: idempotent no-ops


def _uuids(ticket_ids: Sequence[str]) -> list[uuid.UUID]:
    out = []
    for raw in ticket_ids:
        try:
            out.append(uuid.UUID(str(raw)))
        except ValueError:
            log.warning("dropping classify message with invalid ticket id %r", raw)
    return out


def route_tickets(
    sessions: sessionmaker[Session],
    predictor,  # serving.predictor.Predictor (untyped here so this module does not import TensorFlow)
    ticket_ids: Sequence[str],
    review_thresholds: Mapping[str, float],
    attempt: int = 0,
) -> RoutingOutcome:
    """Classify the still-pending tickets among `ticket_ids` in one model call and write all routes in one
    transaction. The UPDATE only touches tickets still pending, so a duplicate message changes nothing."""
    outcome = RoutingOutcome()
    ids = _uuids(ticket_ids)
    with sessions() as session:
        rows = session.execute(
            select(Ticket.id, Ticket.subject, Ticket.body).where(
                Ticket.id.in_(ids), Ticket.status.in_(PENDING_STATUSES)
            )
        ).all()
    found = {row.id for row in rows}
    outcome.skipped = [str(i) for i in ids if i not in found]
    if not rows:
        return outcome
    prepared = prepare_many([ticket_text(row.subject, row.body) for row in rows])
    predictions = predictor.to_predictions(predictor.probabilities_prepared(prepared))
    thresholds = {**predictor.thresholds, **review_thresholds}
    now = utcnow()
    params = []
    for row, text, prediction in zip(rows, prepared, predictions, strict=True):
        confident = bool(text) and prediction.confidence >= thresholds.get(prediction.route, 0.0)
        status = "routed" if confident else "needs_review"
        (outcome.routed if confident else outcome.needs_review).append(str(row.id))
        params.append({
            "b_id": row.id, "b_status": status, "b_route": prediction.route, "b_confidence": prediction.confidence,
            "b_account": prediction.probabilities["Account"], "b_payment": prediction.probabilities["Payment"],
            "b_other": prediction.probabilities["Other"],
        })
    table = cast(Table, Ticket.__table__)
    statement = (
        update(table)
        # Plain comparisons, not IN (...): an expanding IN cannot be used with executemany.
        .where(table.c.id == bindparam("b_id"), or_(*(table.c.status == s for s in PENDING_STATUSES)))
        .values(
            status=bindparam("b_status"), route=bindparam("b_route"), confidence=bindparam("b_confidence"),
            score_account=bindparam("b_account"), score_payment=bindparam("b_payment"),
            score_other=bindparam("b_other"), model_version=predictor.version, routed_at=now,
            attempts=table.c.attempts + 1, last_error=None,
        )
    )
    with sessions() as session, session.begin():
        session.connection().execute(statement, params)
    return outcome


def mark_failed(sessions: sessionmaker[Session], ticket_ids: Sequence[str], error: str) -> None:
    """Give up on tickets: status `failed`, the error kept for an agent to read."""
    table = cast(Table, Ticket.__table__)
    with sessions() as session, session.begin():
        session.connection().execute(
            update(table)
            .where(table.c.id.in_(_uuids(ticket_ids)), table.c.status.in_(PENDING_STATUSES))
            .values(status="failed", last_error=error[:MAX_ERROR_CHARS], attempts=table.c.attempts + 1)
        )


def stale_ticket_ids(sessions: sessionmaker[Session], older_than_seconds: int, limit: int = 1000) -> list[str]:
    """Tickets still pending after `older_than_seconds` (lost message, broker outage, crashed worker)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    waiting_since = func.coalesce(Ticket.queued_at, Ticket.created_at)
    with sessions() as session:
        return [
            str(i)
            for i in session.scalars(
                select(Ticket.id)
                .where(Ticket.status.in_(PENDING_STATUSES), waiting_since < cutoff)
                .order_by(Ticket.created_at)
                .limit(limit)
            )
        ]


def mark_queued(sessions: sessionmaker[Session], ticket_ids: Sequence[str]) -> None:
    table = cast(Table, Ticket.__table__)
    with sessions() as session, session.begin():
        session.connection().execute(
            update(table)
            .where(table.c.id.in_(_uuids(ticket_ids)), table.c.status.in_(PENDING_STATUSES))
            .values(status="queued", queued_at=utcnow())
        )
