"""Outbound webhooks: subscriptions, the events a ticket's life emits, their payload and signature.

A team that already has a helpdesk or a chat subscribes a URL to some of EVENTS. emit() stores one delivery row per
subscription to the event in the caller's transaction (the outbox pattern: an event exists exactly when the change
that caused it is committed), and the ids are handed, once that transaction commits, to the publisher the entry
point installed (core.webhook_queue.publish_through); a process without one, or a broker that is down, leaves them
to the sweep. worker.webhook_tasks POSTs them; core.webhook_outbox holds the delivery rules. docs/webhooks.md is the
receiver's side: payload, headers and how to verify the signature.

Services on a Session; they never commit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, String, Table, bindparam, delete, event, func, literal, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Label

from core.orm import Ticket, WebhookDelivery, WebhookSubscription, utcnow

log = logging.getLogger(__name__)

TICKET_CREATED = "ticket.created"
TICKET_ROUTED = "ticket.routed"  # by the model; `status` says whether it still needs an agent's review
TICKET_REROUTED = "ticket.rerouted"  # an agent changed the route
TICKET_ASSIGNED = "ticket.assigned"
TICKET_RESOLVED = "ticket.resolved"
EVENTS = (TICKET_CREATED, TICKET_ROUTED, TICKET_REROUTED, TICKET_ASSIGNED, TICKET_RESOLVED)

# The receiver's side of the signature (docs/webhooks.md): a timestamp older than this is a replay.
SIGNATURE_TOLERANCE_SECONDS = 300
MIN_SECRET_CHARS = 16
MAX_URL_CHARS = 2000

# session.info keys: the delivery ids written in the open transaction, and the callable that publishes ids once
# it has committed (set per Runtime by core.webhook_queue.publish_through).
_PENDING = "webhooks.pending_deliveries"
PUBLISHER = "webhooks.publisher"
Publisher = Callable[[list[int]], None]


class WebhookError(ValueError):
    """A subscription that cannot be stored as asked (bad URL, unknown event, short secret)."""


# --- subscriptions ----------------------------------------------------------------------------------------------

def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("the URL must be an absolute http:// or https:// URL")
    if len(url) > MAX_URL_CHARS:
        raise WebhookError(f"the URL is longer than {MAX_URL_CHARS} characters")
    return url


def check_events(events: Iterable[str]) -> list[str]:
    chosen = {name.strip() for name in events if name.strip()}
    unknown = sorted(chosen - set(EVENTS))
    if unknown:
        raise WebhookError(f"unknown event {', '.join(unknown)}; one of {', '.join(EVENTS)}")
    if not chosen:
        raise WebhookError(f"choose at least one event: {', '.join(EVENTS)}")
    return [name for name in EVENTS if name in chosen]


def new_secret() -> str:
    return secrets.token_hex(32)


def add_subscription(session: Session, url: str, events: Iterable[str], secret: str | None = None,
                     description: str | None = None) -> WebhookSubscription:
    """Store a subscription; without a secret, one is made (the caller shows it once: it is needed to verify)."""
    if secret is not None and len(secret) < MIN_SECRET_CHARS:
        raise WebhookError(f"the secret must be at least {MIN_SECRET_CHARS} characters")
    subscription = WebhookSubscription(
        url=check_url(url), events=",".join(check_events(events)), secret=secret or new_secret(),
        description=(description or "").strip()[:200] or None, created_at=utcnow(),
    )
    session.add(subscription)
    session.flush()
    return subscription


def remove_subscription(session: Session, subscription_id: int) -> bool:
    """Delete a subscription and, by the foreign key's cascade, its deliveries (pending ones are never sent)."""
    removed = session.execute(delete(WebhookSubscription).where(WebhookSubscription.id == subscription_id))
    return cast(CursorResult[Any], removed).rowcount == 1


@dataclass(frozen=True)
class SubscriptionSummary:
    id: int
    url: str
    events: list[str]
    description: str | None
    created_at: datetime
    pending: int
    delivered: int
    failed: int


def list_subscriptions(session: Session) -> list[SubscriptionSummary]:
    counts: dict[tuple[int, str], int] = {
        (row.subscription_id, row.status): row.n
        for row in session.execute(
            select(WebhookDelivery.subscription_id, WebhookDelivery.status, func.count().label("n"))
            .group_by(WebhookDelivery.subscription_id, WebhookDelivery.status)
        )
    }
    return [
        SubscriptionSummary(s.id, s.url, s.events.split(","), s.description, s.created_at,
                            counts.get((s.id, "pending"), 0), counts.get((s.id, "delivered"), 0),
                            counts.get((s.id, "failed"), 0))
        for s in session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
    ]


_SUBSCRIPTIONS = cast(Table, WebhookSubscription.__table__)


def _subscribes(pattern: Any) -> Any:
    """`events` is comma-separated: the subscriptions whose ",<events>," holds ",<event>," (`pattern` is
    "%,<event>,%", bound now or at execution)."""
    return (literal(",") + _SUBSCRIPTIONS.c.events + literal(",")).like(pattern)


# A Core statement built once: it runs on every routed batch (ticket.routed) and agent's change, where the ORM's
# per-call overhead would cost more than the query itself.
_SUBSCRIBERS = select(_SUBSCRIPTIONS.c.id).where(_subscribes(bindparam("pattern"))).order_by(_SUBSCRIPTIONS.c.id)


def subscriber_ids(session: Session, event_name: str) -> list[int]:
    """The subscriptions to `event_name`."""
    return list(session.connection().execute(_SUBSCRIBERS, {"pattern": f"%,{event_name},%"}).scalars())


def subscribers_column(event_name: str) -> Label[str | None]:
    """The subscriptions to `event_name` as one column another statement returns (comma-separated ids, NULL for
    none; read them with parse_subscribers). Intake asks its INSERT to return it, which saves the look-up's own
    round trip on every ticket (core.tickets.store_queued)."""
    return (
        select(func.aggregate_strings(sql_cast(_SUBSCRIPTIONS.c.id, String), ","))
        .where(_subscribes(literal(f"%,{event_name},%")))
        .scalar_subquery()
        .label("subscribers")
    )


def parse_subscribers(ids: str | None) -> list[int]:
    """subscribers_column's value as subscriber_ids returns it: ids in ascending order."""
    return sorted(int(part) for part in ids.split(",")) if ids else []


# --- events -----------------------------------------------------------------------------------------------------

def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def ticket_data(ticket: Ticket) -> dict[str, Any]:
    """The ticket as every event carries it: what a helpdesk needs to open or update its own copy. It holds the
    customer's message and address, so subscriptions should use https (docs/webhooks.md)."""
    return {
        "id": str(ticket.id), "reference": ticket.reference, "channel": ticket.channel, "status": ticket.status,
        "route": ticket.route, "confidence": ticket.confidence, "review_reason": ticket.review_reason,
        "category": ticket.fine_category, "model_version": ticket.model_version, "subject": ticket.subject,
        "body": ticket.body,
        "customer": {"name": ticket.customer_name, "email": ticket.customer_email},
        "assigned_agent_id": ticket.assigned_agent_id, "created_at": _time(ticket.created_at),
        "routed_at": _time(ticket.routed_at), "resolved_at": _time(ticket.resolved_at),
    }  # fmt: skip


def build_payload(event_name: str, event_id: uuid.UUID, ticket: Ticket, at: datetime,
                  data: Mapping[str, Any] | None = None) -> str:
    """The request body, fixed when the event happens: every attempt sends these exact bytes (UTF-8)."""
    body = {"id": str(event_id), "type": event_name, "created_at": _time(at),
            "data": {**(data or {}), "ticket": ticket_data(ticket)}}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def emit(session: Session, event_name: str, ticket: Ticket, data: Mapping[str, Any] | None = None) -> list[int]:
    """Store the event for every subscription to it, in the caller's transaction; return the delivery ids (they
    are published once that transaction commits). Nothing is written when nobody subscribes."""
    if event_name not in EVENTS:
        raise ValueError(f"unknown webhook event {event_name!r}")
    return emit_to(session, subscriber_ids(session, event_name), event_name, ticket, data)


def emit_to(session: Session, subscriptions: Sequence[int], event_name: str, ticket: Ticket,
            data: Mapping[str, Any] | None = None) -> list[int]:
    """emit() for a caller that already looked the subscriptions up (subscribers_column)."""
    if not subscriptions:
        return []
    return _store(session, list(subscriptions), event_name, [(ticket, data)])


def emit_routed(session: Session, ticket_ids: Sequence[uuid.UUID], routed_at: datetime) -> list[int]:
    """ticket.routed for the tickets a routing write changed: those whose routed_at is the write's own (a duplicate
    message, or an agent who routed the ticket first, changed nothing and emits nothing)."""
    subscriptions = subscriber_ids(session, TICKET_ROUTED) if ticket_ids else []
    if not subscriptions:
        return []
    tickets = session.scalars(
        select(Ticket).where(Ticket.id.in_(ticket_ids), Ticket.routed_at == routed_at,
                             Ticket.status.in_(("routed", "needs_review")))
        .execution_options(populate_existing=True)
    ).all()
    return _store(session, subscriptions, TICKET_ROUTED, [(ticket, None) for ticket in tickets])


def _store(session: Session, subscriptions: list[int], event_name: str,
           events: list[tuple[Ticket, Mapping[str, Any] | None]]) -> list[int]:
    now = utcnow()
    deliveries = []
    for ticket, data in events:
        event_id = uuid.uuid4()  # one id per event, the same for every subscription and every attempt
        payload = build_payload(event_name, event_id, ticket, now, data)
        deliveries += [
            WebhookDelivery(subscription_id=subscription_id, event_id=event_id, event=event_name,
                            ticket_id=ticket.id, payload=payload, status="pending", attempts=0, created_at=now)
            for subscription_id in subscriptions
        ]
    session.add_all(deliveries)
    session.flush()
    ids = [delivery.id for delivery in deliveries]
    session.info.setdefault(_PENDING, []).extend(ids)
    return ids


@event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the outer transaction may still roll back
        return
    ids = session.info.pop(_PENDING, None)
    publisher: Publisher | None = session.info.get(PUBLISHER)
    if not ids or publisher is None:
        return  # no publisher in this process (a CLI command): the sweep publishes them
    try:
        publisher(ids)
    except Exception:  # noqa: BLE001 - the deliveries are committed; the sweep publishes what this did not
        log.exception("webhook deliveries %s not published; the sweep will", ids)


@event.listens_for(Session, "after_transaction_end")
def _drop_pending(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction ended without a commit (or after it: nothing left)
        session.info.pop(_PENDING, None)


# --- the signature ----------------------------------------------------------------------------------------------

def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The Furiwake-Signature header: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, now: float,
                     tolerance: float = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """The receiver's check (docs/webhooks.md has it as a standalone recipe): a v1 MAC over "<t>.<body>" that
    matches, with t no further than `tolerance` seconds from now. Used by the tests as a receiver would."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", []))
