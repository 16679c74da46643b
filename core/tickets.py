"""Storing, enqueuing and listing tickets: plain functions shared by every intake channel (API, web form, e-mail).

No Flask here: the e-mail webhooks and the CLI call the same functions the HTTP API calls.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery
from sqlalchemy import Engine, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.messaging import enqueue_classification
from core.orm import Ticket, new_reference, utcnow

log = logging.getLogger(__name__)

_INSERT_TICKET = insert(Ticket)
# Every column a new ticket's INSERT names, so that each insert has the same parameter set (one compiled statement).
_OPTIONAL_FIELDS = dict.fromkeys(("subject", "customer_name", "customer_email", "idempotency_key", "message_id"))


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


def create_ticket(
    session: Session,
    *,
    channel: str,
    body: str,
    subject: str | None = None,
    customer_name: str | None = None,
    customer_email: str | None = None,
    idempotency_key: str | None = None,
    message_id: str | None = None,
    queued: bool = False,
) -> tuple[Ticket, bool]:
    """Add a ticket to the session's transaction; return (ticket, created).

    A client that retries (same Idempotency-Key) or a mail server that redelivers (same Message-ID) gets the ticket
    the first attempt created, with created=False. The unique constraints are the real guard: when two requests race
    past the look-up, the loser's INSERT fails inside a savepoint, which is rolled back so the caller's transaction
    stays usable, and the winner's row is read back. The caller commits.

    queued=True stores a new ticket as `queued` straight away, for a caller that publishes it right after the
    commit (submit_ticket): one INSERT, no UPDATE after it.
    """
    duplicate = _find_duplicate(session, idempotency_key, message_id)
    if duplicate is not None:
        return duplicate, False
    now = utcnow()  # one clock reading: queued_at never precedes created_at
    ticket = Ticket(
        channel=channel,
        body=body,
        subject=subject,
        customer_name=customer_name,
        customer_email=customer_email,
        idempotency_key=idempotency_key,
        message_id=message_id,
        status="queued" if queued else "received",
        attempts=0,
        created_at=now,
        queued_at=now if queued else None,
    )
    if idempotency_key is None and message_id is None:
        session.add(ticket)  # nothing unique can clash (id and reference are random): no savepoint round trip
        return ticket, True
    try:
        with session.begin_nested():
            session.add(ticket)
    except IntegrityError:
        duplicate = _find_duplicate(session, idempotency_key, message_id)
        if duplicate is None:
            raise  # some other constraint failed: a bug, not a retry
        return duplicate, False
    return ticket, True


def submit_ticket(
    session_factory: sessionmaker[Session], celery_app: Celery, **fields: str | None
) -> tuple[Ticket, bool]:
    """Store a ticket, then ask the workers to classify it; return (ticket, created).

    The commit comes first so a worker never receives an id it cannot read. The ticket is committed as `queued`
    (one transaction on the happy path, which is what keeps intake fast); if the publish then fails it is set back
    to `received`. Either way the worker's periodic sweep re-enqueues whatever is still pending after
    SWEEP_AFTER_SECONDS, so a broker outage or a crash between commit and publish loses nothing, and the request
    still succeeds. A repeated request (created=False) is not enqueued again; the first one was, or the sweep will.
    Only a request with an Idempotency-Key or a Message-ID can be a repeat; the others take the cheaper path.
    """
    if fields.get("idempotency_key") is None and fields.get("message_id") is None:
        ticket, created = _insert_queued(session_factory, fields), True
    else:
        with transaction(session_factory) as session:
            ticket, created = create_ticket(session, queued=True, **fields)  # type: ignore[arg-type]
    if not created:
        return ticket, False
    try:
        enqueue_classification(celery_app, [str(ticket.id)])
    except Exception as exc:  # noqa: BLE001 - whatever the broker raised, the sweep will retry
        log.warning(
            "ticket %s stored but not enqueued (%s: %s); the sweep will retry", ticket.id, type(exc).__name__, exc
        )
        return _mark_received(session_factory, ticket), True
    return ticket, True


def _insert_queued(session_factory: sessionmaker[Session], fields: dict[str, Any]) -> Ticket:
    """The intake hot path, a ticket without a key that could repeat: one Core INSERT in its own transaction.

    Nothing can clash (id and reference are random), so create_ticket's look-up and savepoint have nothing to do,
    and the ORM unit of work (flush planning, identity map, attribute history), plus a Session around it, would
    cost about as much CPU again as the statement itself. The ticket returned is a plain, transient Ticket holding
    exactly the values stored (id and reference are made here, not by the database), which is all callers read.
    """
    now = utcnow()  # one clock reading: queued_at never precedes created_at
    values = {
        **_OPTIONAL_FIELDS,
        **fields,
        "id": uuid.uuid4(),
        "reference": new_reference(),
        "status": "queued",
        "attempts": 0,
        "created_at": now,
        "queued_at": now,
    }
    with _engine(session_factory).begin() as connection:
        connection.execute(_INSERT_TICKET, values)
    return Ticket(**values)


def _engine(session_factory: sessionmaker[Session]) -> Engine:
    """The engine the factory's sessions are bound to (core.db.make_session_factory always binds one)."""
    bind = session_factory.kw.get("bind")
    if not isinstance(bind, Engine):
        raise TypeError(f"expected a session factory bound to an Engine, not {bind!r}")
    return bind


def _mark_received(session_factory: sessionmaker[Session], ticket: Ticket) -> Ticket:
    """The publish failed: say so truthfully (`received`), unless something already moved the ticket on."""
    try:
        with transaction(session_factory) as session:
            session.execute(
                update(Ticket)
                .where(Ticket.id == ticket.id, Ticket.status == "queued")
                .values(status="received", queued_at=None)
            )
            fresh = session.get(Ticket, ticket.id, populate_existing=True)
    except SQLAlchemyError as exc:
        log.warning("ticket %s not enqueued and its status not reset (%s)", ticket.id, exc)
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
