"""The webhook deliveries' state: when an attempt is due, claiming one, recording its outcome. The same rules as the
mail outbox (core.outbox), on webhook_deliveries rows; readable and testable without Celery or HTTP.

At least once: an attempt is claimed (attempts + 1, a lease) and committed before the POST, and the delivery is
marked `delivered` after the receiver's 2xx. A crash between the two repeats the POST once the lease expires, with
the same event id (the payload is stored): receivers drop an event id they have seen (docs/webhooks.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Update, select, update
from sqlalchemy.orm import Session

from core.orm import Ticket, WebhookDelivery, WebhookSubscription, utcnow
from core.outbox import RetryPolicy, release_attempt_lease, take_attempt_lease

# 30 s after the first failure, doubling to 30 min, for a day: a receiver down overnight still gets its events.
DEFAULT_POLICY = RetryPolicy(first=30.0, cap=1800.0, give_up_after=86400.0)
MAX_ERROR_CHARS = 2000


def due_at(policy: RetryPolicy, delivery: WebhookDelivery) -> datetime:
    """RetryPolicy.due_at's rule (counted from created_at and the attempts made) for a delivery."""
    return _due(policy, delivery.created_at, delivery.attempts)


def _due(policy: RetryPolicy, created_at: datetime, attempts: int) -> datetime:
    return created_at + timedelta(seconds=sum(policy.delay(n) for n in range(1, attempts + 1)))


def gives_up(policy: RetryPolicy, delivery: WebhookDelivery, now: datetime) -> bool:
    return (now - delivery.created_at).total_seconds() >= policy.give_up_after


@dataclass(frozen=True)
class Claimed:
    """One attempt's request, read in the claiming transaction so the POST needs no database."""

    delivery_id: int
    url: str
    secret: str
    event: str
    event_id: uuid.UUID
    payload: bytes
    attempts: int
    ticket_id: str | None


def _changed(session: Session, statement: Update) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount


class _Lost(Exception):
    """Another attempt holds this delivery."""


def claim(session: Session, delivery_id: int, policy: RetryPolicy, now: datetime,
          lease_seconds: float) -> Claimed | None:
    """Take the next attempt at a pending, due delivery (attempts + 1, its lease held); None if it is not pending,
    not due yet, its subscription is gone, or another attempt holds it. core.outbox.claim explains the two guards:
    the conditional UPDATE on the attempts read, and the lease that outlives one POST."""
    delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
    if delivery is None or delivery.status != "pending" or due_at(policy, delivery) > now:
        return None
    subscription = session.get(WebhookSubscription, delivery.subscription_id)
    if subscription is None:
        return None
    seen = delivery.attempts
    try:
        with session.begin_nested():  # a lost race leaves nothing behind in the caller's transaction
            if not _take_lease(session, delivery_id, now, lease_seconds):
                raise _Lost
            if _changed(session, update(WebhookDelivery)
                        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
                               WebhookDelivery.attempts == seen)
                        .values(attempts=seen + 1)) != 1:
                raise _Lost
    except _Lost:
        return None
    return Claimed(delivery_id, subscription.url, subscription.secret, delivery.event, delivery.event_id,
                   delivery.payload.encode(), seen + 1, str(delivery.ticket_id) if delivery.ticket_id else None)


def _lease_name(delivery_id: int) -> str:
    return f"webhook:{delivery_id}"


def _take_lease(session: Session, delivery_id: int, now: datetime, seconds: float) -> bool:
    return take_attempt_lease(session, _lease_name(delivery_id), "deliver_webhook", now, seconds)


def _release(session: Session, delivery_id: int) -> None:
    release_attempt_lease(session, _lease_name(delivery_id))


def _pending(delivery_id: int) -> Update:
    return update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending")


def mark_delivered(session: Session, delivery_id: int, status_code: int, now: datetime | None = None) -> bool:
    _release(session, delivery_id)
    return _changed(session, _pending(delivery_id).values(
        status="delivered", delivered_at=now or utcnow(), last_status_code=status_code, last_error=None)) == 1


def mark_failed(session: Session, delivery_id: int, error: str, status_code: int | None) -> bool:
    _release(session, delivery_id)
    return _changed(session, _pending(delivery_id).values(
        status="failed", last_error=error[:MAX_ERROR_CHARS], last_status_code=status_code)) == 1


def note_error(session: Session, delivery_id: int, error: str, status_code: int | None) -> None:
    """An attempt failed and the delivery stays pending: keep the error for the admin page, free the next attempt."""
    _release(session, delivery_id)
    _changed(session, _pending(delivery_id).values(last_error=error[:MAX_ERROR_CHARS], last_status_code=status_code))


def pending_ids(session: Session, older_than: datetime, policy: RetryPolicy, now: datetime,
                limit: int = 500) -> list[int]:
    """Pending deliveries written before `older_than` whose next attempt is overdue by as long (for the sweep: the
    publish or the retry message was lost, or the process that emitted them publishes nothing), oldest first."""
    grace = now - older_than
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.created_at, WebhookDelivery.attempts)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.created_at <= older_than)
        .order_by(WebhookDelivery.created_at).limit(limit)
    )
    return [row.id for row in rows if _due(policy, row.created_at, row.attempts) + grace <= now]


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery as the admin page lists it (no payload: it holds the customer's message)."""

    id: int
    subscription_id: int
    event: str
    event_id: uuid.UUID
    ticket_id: uuid.UUID | None
    ticket_reference: str | None
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def recent(session: Session, limit: int = 50) -> list[DeliveryRow]:
    """The newest deliveries, for the admin page."""
    d = WebhookDelivery
    rows = session.execute(
        select(d.id, d.subscription_id, d.event, d.event_id, d.ticket_id, Ticket.reference.label("ticket_reference"),
               d.status, d.attempts, d.last_status_code, d.last_error, d.created_at, d.delivered_at)
        .outerjoin(Ticket, Ticket.id == d.ticket_id)
        .order_by(d.created_at.desc(), d.id.desc()).limit(limit)
    )
    return [DeliveryRow(**row._asdict()) for row in rows]
