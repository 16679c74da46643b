"""Routing tickets: service functions on a Session that never commit, so a task, a test or a benchmark decides
where each unit of work begins and ends.

Routing a batch is read → classify → write. The read and the write are separate on purpose: the model call between
them takes tens of milliseconds, and a SQLite read transaction that upgrades to a write after another process has
committed (the API storing the next ticket) fails at once with "database is locked" instead of waiting. So the
tickets are read with `pending_tickets`, classified with `plan_routes` (no database), and written with
`write_routes` in the batch's one unit of work; the UPDATE only touches tickets still pending, which makes the
write correct whatever happened in between (a duplicate message, an agent's change).

Rules before the model (core/rules.py): the read also takes the active rules (a few rows, once per batch), the plan
matches each ticket against them, and the model still runs on the whole batch in its one call. A ticket a rule
matched takes the rule's route (if it sets one) and is `routed` (an admin's decision, no review); its scores,
confidence, fine category and model_route stay the model's own, and rule_id / rule_version say which rule. After
the write, core.rules.apply_hits records the rule in the ticket's history and gives it to the rule's assignee; the
rest go to automatic assignment as before.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from core import metrics, rules, webhooks
from core.orm import PENDING_STATUSES, Ticket, utcnow
from core.text import prepare_many, ticket_text

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 2000


@dataclass
class RoutingOutcome:
    routed: list[str] = field(default_factory=list)
    needs_review: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unknown, or already routed: idempotent no-ops


@dataclass(frozen=True)
class PendingTicket:
    id: uuid.UUID
    subject: str | None
    body: str
    created_at: datetime | None = None  # for the received-to-routed latency metric
    channel: str = "api"
    customer_email: str | None = None
    recipient: str | None = None

    def facts(self) -> rules.Facts:
        return rules.Facts(channel=self.channel, sender=self.customer_email, recipient=self.recipient,
                           subject=self.subject, body=self.body)  # fmt: skip


@dataclass
class PendingBatch:
    """The still-pending tickets among the ids asked for, and the ids that are not (unknown or already routed)."""

    tickets: list[PendingTicket]
    skipped: list[str]
    active_rules: list[rules.LoadedRule] = field(default_factory=list)  # in the order they are tried


@dataclass
class RoutingPlan:
    """What one batch's write will set on each ticket, and the outcome it reports."""

    outcome: RoutingOutcome
    model_version: str
    params: list[dict[str, object]] = field(default_factory=list)
    received_at: list[datetime | None] = field(default_factory=list)  # per params row: the ticket's created_at
    rule_hits: list[rules.RuleHit] = field(default_factory=list)


def _uuids(ticket_ids: Sequence[str]) -> list[uuid.UUID]:
    out = []
    for raw in ticket_ids:
        try:
            out.append(uuid.UUID(str(raw)))
        except ValueError:
            log.warning("dropping classify message with invalid ticket id %r", raw)
    return out


def pending_tickets(session: Session, ticket_ids: Sequence[str]) -> PendingBatch:
    """Read the tickets among `ticket_ids` that still wait for a route (invalid ids are dropped with a warning),
    and the active rules when there is any."""
    ids = _uuids(ticket_ids)
    tickets = [
        PendingTicket(row.id, row.subject, row.body, row.created_at, row.channel, row.customer_email, row.recipient)
        for row in session.execute(
            select(Ticket.id, Ticket.subject, Ticket.body, Ticket.created_at, Ticket.channel, Ticket.customer_email,
                   Ticket.recipient)
            .where(Ticket.id.in_(ids), Ticket.status.in_(PENDING_STATUSES))
        )
    ]
    found = {ticket.id for ticket in tickets}
    active = rules.active_rules(session) if tickets else []
    return PendingBatch(tickets, [str(i) for i in ids if i not in found], active)


def plan_routes(
    predictor,  # serving.predictor.Predictor (untyped here so this module does not import TensorFlow)
    batch: PendingBatch,
    review_thresholds: Mapping[str, float],
) -> RoutingPlan:
    """Classify the batch in one model call; a ticket below its route's threshold, unlike the rows the thresholds
    were measured on (Prediction.familiar), or with no text left after the clean-up goes to review with its
    predicted route kept. The fine category comes from the same call (None from
    a version trained without the category head); it never decides the status: the route is the contract.
    A ticket an active rule matches is routed as the rule says, the model's prediction kept beside it."""
    plan = RoutingPlan(RoutingOutcome(skipped=list(batch.skipped)), predictor.version)
    if not batch.tickets:
        return plan
    texts = [ticket_text(ticket.subject, ticket.body) for ticket in batch.tickets]
    prepared = prepare_many(texts)
    predictions = predictor.predict(texts, prepared)
    thresholds = {**predictor.thresholds, **review_thresholds}
    for ticket, text, prediction in zip(batch.tickets, prepared, predictions, strict=True):
        rule = rules.match(batch.active_rules, ticket.facts())
        reason = None if rule is not None else review_reason(text, prediction, thresholds.get(prediction.route, 0.0))
        status = "routed" if reason is None else "needs_review"
        (plan.outcome.routed if status == "routed" else plan.outcome.needs_review).append(str(ticket.id))
        plan.params.append({
            "b_id": ticket.id, "b_status": status, "b_review_reason": reason,
            "b_route": (rule and rule.route) or prediction.route,
            "b_confidence": prediction.confidence, "b_account": prediction.probabilities["Account"],
            "b_payment": prediction.probabilities["Payment"], "b_other": prediction.probabilities["Other"],
            "b_category": prediction.category, "b_category_confidence": prediction.category_confidence,
            "b_model_route": prediction.route, "b_rule_id": rule and rule.id, "b_rule_version": rule and rule.version,
        })
        if rule is not None:
            plan.rule_hits.append(rules.RuleHit(ticket.id, rule, prediction.route, prediction.confidence))
        plan.received_at.append(ticket.created_at)
    return plan


def review_reason(prepared_text: str, prediction, threshold: float) -> str | None:
    """Why the model should not decide this ticket alone (one of core.orm.REVIEW_REASONS), or None to route it:
    nothing left to classify, text unlike the rows its thresholds were measured on, or a confidence below its
    route's threshold, checked in that order (the first that holds is the one an agent most needs to know)."""
    if not prepared_text:
        return "no_text"
    if not prediction.familiar:
        return "unfamiliar_text"
    if prediction.confidence < threshold:
        return "low_confidence"
    return None


def write_routes(session: Session, plan: RoutingPlan) -> None:
    """Write every route of the plan in one statement; tickets no longer pending are left as they are."""
    if not plan.params:
        return
    table = cast(Table, Ticket.__table__)
    routed_at = utcnow()  # one value for the whole write: emit_routed finds the tickets it changed by it
    statement = (
        update(table)
        # Plain comparisons, not IN (...): an expanding IN cannot be used with executemany.
        .where(table.c.id == bindparam("b_id"), or_(*(table.c.status == s for s in PENDING_STATUSES)))
        .values(
            status=bindparam("b_status"), review_reason=bindparam("b_review_reason"), route=bindparam("b_route"),
            confidence=bindparam("b_confidence"),
            score_account=bindparam("b_account"), score_payment=bindparam("b_payment"),
            score_other=bindparam("b_other"), fine_category=bindparam("b_category"),
            fine_confidence=bindparam("b_category_confidence"), model_version=plan.model_version, routed_at=routed_at,
            model_route=bindparam("b_model_route"), rule_id=bindparam("b_rule_id"),
            rule_version=bindparam("b_rule_version"), attempts=table.c.attempts + 1, last_error=None,
        )
    )
    # A plan row without a category or a rule (built by a caller that knows only routes) stores none: the route
    # is then the model's own.
    rows = [{"b_category": None, "b_category_confidence": None, "b_rule_id": None, "b_rule_version": None,
             "b_review_reason": None, "b_model_route": row["b_route"], **row} for row in plan.params]  # fmt: skip
    session.connection().execute(statement, rows)
    # ticket.routed for the tickets this write changed: those carrying its routed_at (core.webhooks.emit_routed).
    webhooks.emit_routed(session, [cast(uuid.UUID, row["b_id"]) for row in plan.params], routed_at)
    metrics.on_commit(session, lambda: _count_routed(plan))
    # A rule's history line and its assignee first; automatic assignment then skips the tickets they took.
    rules.apply_hits(session, plan.rule_hits, routed_at)
    from core.assignment import after_routing  # automatic assignment, in this same transaction (it says why)

    after_routing(session, [row["b_id"] for row in plan.params])


def _count_routed(plan: RoutingPlan) -> None:
    """Counted from the plan once committed: a ticket an agent routed meanwhile is counted too (rare, and it was
    classified all the same)."""
    for row, received_at in zip(plan.params, plan.received_at, strict=True):
        reason = row.get("b_review_reason")
        metrics.ticket_routed(str(row["b_status"]), str(row["b_route"]), plan.model_version,
                              float(cast(float, row["b_confidence"])), received_at, str(reason) if reason else None)


def mark_failed(session: Session, ticket_ids: Sequence[str], error: str) -> None:
    """Give up on tickets: status `failed`, the error kept for an agent to read."""
    table = cast(Table, Ticket.__table__)
    session.connection().execute(
        update(table)
        .where(table.c.id.in_(_uuids(ticket_ids)), table.c.status.in_(PENDING_STATUSES))
        .values(status="failed", last_error=error[:MAX_ERROR_CHARS], attempts=table.c.attempts + 1)
    )


def stale_ticket_ids(session: Session, older_than_seconds: int, limit: int = 1000) -> list[str]:
    """Tickets still pending after `older_than_seconds` (lost message, broker outage, crashed worker)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    waiting_since = func.coalesce(Ticket.queued_at, Ticket.created_at)
    return [
        str(i)
        for i in session.scalars(
            select(Ticket.id)
            .where(Ticket.status.in_(PENDING_STATUSES), waiting_since < cutoff)
            .order_by(Ticket.created_at)
            .limit(limit)
        )
    ]


def mark_queued(session: Session, ticket_ids: Sequence[str]) -> None:
    """The sweep's re-enqueue: counted once committed, and the sweep commits only after the publish succeeded."""
    table = cast(Table, Ticket.__table__)
    session.connection().execute(
        update(table)
        .where(table.c.id.in_(_uuids(ticket_ids)), table.c.status.in_(PENDING_STATUSES))
        .values(status="queued", queued_at=utcnow())
    )
    metrics.on_commit(session, lambda: metrics.sweep_requeued(len(ticket_ids)))
