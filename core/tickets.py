"""Storing, enqueuing and listing tickets: plain functions shared by every intake channel (API, web form, e-mail).

No Flask here: the e-mail webhooks and the web form call the same functions the HTTP API calls.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from core import metrics, webhooks
from core.mail_queue import acknowledge_new_ticket
from core.messaging import enqueue_classification
from core.orm import Ticket, new_reference, utcnow
from core.runtime import Runtime

log = logging.getLogger(__name__)

# The subscriptions to ticket.created come back with the INSERT: no look-up of their own on every intake request.
_INSERT_TICKET = insert(Ticket).returning(webhooks.subscribers_column(webhooks.TICKET_CREATED))


@dataclass(frozen=True)
class NewTicket:
    """A customer's request as an intake channel (JSON API, web form, e-mail) hands it over, before it is stored.

    idempotency_key (a client's retry) and message_id (a mail server's redelivery) make a request repeatable:
    the second delivery gets the ticket the first one created."""

    channel: str
    body: str
    subject: str | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    idempotency_key: str | None = None
    message_id: str | None = None
    mail_message_id: str | None = None  # e-mail: the mail's own Message-ID (message_id is its dedupe key)
    recipient: str | None = None  # e-mail: the support address it was sent to

    @property
    def repeatable(self) -> bool:
        return self.idempotency_key is not None or self.message_id is not None

    def columns(self) -> dict[str, str | None]:
        """The fields as the tickets table's columns. Not dataclasses.asdict, which deep-copies every value
        recursively: about a hundred calls on each intake request for fields that are all plain strings."""
        return {name: getattr(self, name) for name in _NEW_TICKET_FIELDS}


_NEW_TICKET_FIELDS = tuple(field.name for field in fields(NewTicket))


# What a request carries, as stored: two deliveries under one Idempotency-Key must agree on all of it.
_REQUEST_FIELDS = ("channel", "body", "subject", "customer_name", "customer_email")


class IdempotencyKeyReused(ValueError):
    """An Idempotency-Key already stored with a different request: a client bug, refused rather than answered
    with a ticket the new text never reached (payment APIs such as Stripe answer the same way)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used for a different request")
        self.key = key


def _check_same_request(duplicate: Ticket, new: NewTicket) -> None:
    """Raise IdempotencyKeyReused when `duplicate` was stored under new's key from a request that differs.

    The stored fields are compared directly: the intake channels store a request's fields as they were loaded
    (already normalised by the schema), and a ticket's request fields are never rewritten afterwards, so equal
    requests compare equal, and nothing extra (a fingerprint column) is written on the keyless hot path. A
    mail server's redelivery (same Message-ID) is the same mail by definition and is not compared.
    """
    if new.idempotency_key is None or duplicate.idempotency_key != new.idempotency_key:
        return
    if any(getattr(duplicate, name) != getattr(new, name) for name in _REQUEST_FIELDS):
        raise IdempotencyKeyReused(new.idempotency_key)


def _find_duplicate(session: Session, idempotency_key: str | None, message_id: str | None) -> Ticket | None:
    """The ticket an earlier delivery of the same request created, if any."""
    conditions = []
    if idempotency_key is not None:
        conditions.append(Ticket.idempotency_key == idempotency_key)
    if message_id is not None:
        conditions.append(Ticket.message_id == message_id)
    if not conditions:
        return None
    return session.scalars(select(Ticket).where(or_(*conditions)).limit(1)).first()


def create_ticket(session: Session, new: NewTicket, *, queued: bool = False) -> tuple[Ticket, bool]:
    """Add a ticket to the session's transaction; return (ticket, created). The caller commits.

    A client that retries (same Idempotency-Key) or a mail server that redelivers (same Message-ID) gets the ticket
    the first attempt created, with created=False; the same Idempotency-Key with a different request raises
    IdempotencyKeyReused. The unique constraints are the real guard: when two requests race
    past the look-up, the loser's INSERT fails inside a savepoint, which is rolled back so the caller's transaction
    stays usable, and the winner's row is read back.

    queued=True stores a new ticket as `queued` straight away, for a caller that publishes it right after the
    commit (submit_ticket): one INSERT, no UPDATE after it.
    """
    duplicate = _find_duplicate(session, new.idempotency_key, new.message_id)
    if duplicate is not None:
        _check_same_request(duplicate, new)
        return duplicate, False
    now = utcnow()  # one clock reading: queued_at never precedes created_at
    ticket = Ticket(
        **new.columns(),
        status="queued" if queued else "received",
        attempts=0,
        created_at=now,
        queued_at=now if queued else None,
    )
    if not new.repeatable:
        session.add(ticket)  # nothing unique can clash (id and reference are random): no savepoint round trip
        metrics.on_commit(session, lambda: metrics.ticket_received(new.channel))
        return ticket, True
    try:
        with session.begin_nested():
            session.add(ticket)
    except IntegrityError:
        duplicate = _find_duplicate(session, new.idempotency_key, new.message_id)
        if duplicate is None:
            raise  # some other constraint failed: a bug, not a retry
        _check_same_request(duplicate, new)
        return duplicate, False
    metrics.on_commit(session, lambda: metrics.ticket_received(new.channel))
    return ticket, True


def store_queued(session: Session, new: NewTicket) -> tuple[Ticket, bool]:
    """Add a ticket to the session's transaction as `queued`, for a caller that publishes it once committed.

    A request that cannot repeat takes the intake hot path: one Core INSERT on the session's connection, which also
    returns the subscriptions to ticket.created. Nothing can clash (id and reference are random), so
    create_ticket's look-up and savepoint have nothing to do, and the ORM's flush (planning, identity map,
    attribute history) would cost about as much CPU again as the statement itself. The ticket returned is then a
    plain, transient Ticket holding exactly the values stored (id and reference are made here, not by the
    database), which is all callers read.
    """
    if new.repeatable:
        ticket, created = create_ticket(session, new, queued=True)
        if created:
            webhooks.emit(session, webhooks.TICKET_CREATED, ticket)  # in the ticket's own transaction (an outbox)
        return ticket, created
    now = utcnow()  # one clock reading: queued_at never precedes created_at
    values = {
        **new.columns(),
        "id": uuid.uuid4(),
        "reference": new_reference(),
        "status": "queued",
        "attempts": 0,
        "created_at": now,
        "queued_at": now,
    }
    subscribers = session.connection().execute(_INSERT_TICKET, values).scalar_one()
    metrics.on_commit(session, lambda: metrics.ticket_received(new.channel))
    ticket = Ticket(**values)
    # In the ticket's own transaction (an outbox); nobody subscribed (the usual case) writes nothing.
    webhooks.emit_to(session, webhooks.parse_subscribers(subscribers), webhooks.TICKET_CREATED, ticket)
    return ticket, True


def submit_ticket(runtime: Runtime, new: NewTicket) -> tuple[Ticket, bool]:
    """Store a ticket in one unit of work, then ask the workers to classify it; return (ticket, created).

    The commit comes first so a worker never receives an id it cannot read: the ticket is committed as `queued`
    (one transaction on the happy path, which is what keeps intake fast) and published afterwards (publish()).
    A repeated request (created=False) is not enqueued again; the first one was, or the sweep will.
    """
    with runtime.unit_of_work() as session:
        ticket, created = store_queued(session, new)
    if created:
        ticket = publish(runtime, ticket)
    return ticket, created


def submit_tickets(runtime: Runtime, news: Sequence[NewTicket]) -> list[tuple[Ticket, bool]]:
    """Store several tickets in one unit of work, then ask the workers to classify the new ones; return (ticket,
    created) for each, in order.

    What submit_ticket does for one, for a client that sends many at once (a bulk import, a forwarding service):
    each ticket is stored exactly as submit_ticket stores it (its webhooks, metrics and idempotency included), but
    the batch shares one transaction, one commit and one pass over the broker. All or nothing: if one cannot be
    stored, none is. A repeated ticket (created=False) is not enqueued again.
    """
    with runtime.unit_of_work() as session:
        stored = [store_queued(session, new) for new in news]
    published = iter(publish_all(runtime, [ticket for ticket, created in stored if created]))
    return [(next(published) if created else ticket, created) for ticket, created in stored]


def publish(runtime: Runtime, ticket: Ticket) -> Ticket:
    """Enqueue a committed `queued` ticket for classification; return it as it now stands (publish_all)."""
    return publish_all(runtime, [ticket])[0]


def publish_all(runtime: Runtime, tickets: Sequence[Ticket]) -> list[Ticket]:
    """Enqueue committed `queued` tickets for classification; return each as it now stands.

    The one exception to "service functions never commit": if the publish fails, the tickets, already committed as
    `queued`, are set back to `received`, each in a unit of work of its own (the compensation of the earlier
    commit; there is no transaction that spans a database and a broker). The request still succeeds: the worker's
    periodic sweep re-enqueues whatever is still pending after SWEEP_AFTER_SECONDS, so a broker outage or a crash
    between commit and publish loses nothing. A batch's messages that went out before the broker failed are still
    delivered; the worker routes a `received` ticket as it does a `queued` one (both are pending), and routes it
    once, whichever message or sweep comes first.
    """
    if not tickets:
        return []
    for ticket in tickets:
        acknowledge_new_ticket(runtime, ticket)  # its own short unit of work; never raises (core.mail_queue)
    try:
        enqueue_classification(runtime.celery, [str(ticket.id) for ticket in tickets], runtime.producer())
    except Exception as exc:  # noqa: BLE001 - whatever the broker raised, the sweep will retry
        for ticket in tickets:
            log.warning(
                "ticket %s stored but not enqueued (%s: %s); the sweep will retry", ticket.id, type(exc).__name__,
                exc, extra={"ticket_id": str(ticket.id)},
            )
        return [_mark_received(runtime, ticket) for ticket in tickets]
    return list(tickets)


def _mark_received(runtime: Runtime, ticket: Ticket) -> Ticket:
    """The publish failed: say so truthfully (`received`), unless something already moved the ticket on."""
    try:
        with runtime.unit_of_work() as session:
            session.execute(
                update(Ticket)
                .where(Ticket.id == ticket.id, Ticket.status == "queued")
                .values(status="received", queued_at=None)
            )
            fresh = session.get(Ticket, ticket.id, populate_existing=True)
    except SQLAlchemyError as exc:
        log.warning("ticket %s not enqueued and its status not reset (%s)", ticket.id, exc,
                    extra={"ticket_id": str(ticket.id)})
        return ticket
    return fresh if fresh is not None else ticket


def get_ticket(session: Session, ticket_id: uuid.UUID) -> Ticket | None:
    return session.get(Ticket, ticket_id)


@dataclass(frozen=True)
class Position:
    """Where a page of the oldest-first listing ends: the (created_at, id) of its last ticket."""

    created_at: datetime
    id: uuid.UUID

    @classmethod
    def of(cls, ticket: Ticket) -> Position:
        return cls(ticket.created_at, ticket.id)


def list_tickets(
    session: Session,
    *,
    route: str | None = None,
    status: str | None = None,
    after: Position | None = None,
    limit: int = 50,
) -> tuple[list[Ticket], Position | None]:
    """Oldest first, keyset-paginated; return (page, position to continue after, or None on the last page).

    Keyset rather than OFFSET: a page costs the same however deep the queue is, and tickets arriving meanwhile
    neither shift nor repeat rows. (created_at, id) is unique and covered by the indexes of the tickets table.
    """
    query = select(Ticket)
    if route is not None:
        query = query.where(Ticket.route == route)
    if status is not None:
        query = query.where(Ticket.status == status)
    if after is not None:
        query = query.where(tuple_(Ticket.created_at, Ticket.id) > tuple_(after.created_at, after.id))
    rows = list(session.scalars(query.order_by(Ticket.created_at, Ticket.id).limit(limit + 1)))
    page = rows[:limit]
    return page, (Position.of(page[-1]) if len(rows) > limit else None)
