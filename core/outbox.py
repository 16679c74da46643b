"""The outbox: agents' replies, internal notes and acknowledgements as stored Messages, and the state of their mail.

Services on a Session; they never commit. Outbound mail is stored `pending` with its Message-ID already made, in
the same transaction as whatever caused it, and sent afterwards by a task (worker.mail_tasks): a mail server that
is down delays a reply, never loses it. The delivery rules (when an attempt is due, claiming one, never sending
twice) are here so that they can be read, and tested, without Celery; docs/email.md ("Sending mail") explains them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Update, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import mailer, sla
from core.automail import is_unacknowledgeable_address
from core.config import MailSettings
from core.orm import JobLease, Message, Ticket, TicketEvent, utcnow

log = logging.getLogger(__name__)

# How many earlier ids a References header carries: the first and the newest are what clients thread on.
MAX_REFERENCES = 20


class NoRecipient(ValueError):
    """The ticket has no customer e-mail address: there is nobody to send a reply to."""


@dataclass(frozen=True)
class RetryPolicy:
    """When the next attempt at an undelivered mail is due: `first` seconds after the first failure, doubling up to
    `cap`; after `give_up_after` seconds since the mail was written, a failed attempt is the last one.

    Due times count from created_at and the attempts made (not from when the last attempt ran), so the task and the
    outbox sweep agree on them without a column of their own. `cap` stays below the Redis visibility timeout (1 h,
    core.messaging), so a retry's ETA message is not redelivered while it waits.
    """

    first: float = 60.0
    cap: float = 1800.0
    give_up_after: float = 86400.0

    def delay(self, attempts: int) -> float:
        """Seconds between attempt number `attempts` and the next."""
        return min(self.first * 2 ** min(attempts - 1, 30), self.cap) if attempts > 0 else 0.0

    def due_at(self, message: Message) -> datetime:
        return message.created_at + timedelta(seconds=sum(self.delay(n) for n in range(1, message.attempts + 1)))

    def gives_up(self, message: Message, now: datetime) -> bool:
        return (now - message.created_at).total_seconds() >= self.give_up_after


DEFAULT_POLICY = RetryPolicy()


# --- what agents write ----------------------------------------------------------------------------------------

def queue_reply(session: Session, ticket: Ticket, agent_id: int | None, body: str, mail: MailSettings) -> Message:
    """Store an agent's reply as pending mail to the customer (threaded on the conversation so far)."""
    if not ticket.customer_email:
        raise NoRecipient(f"ticket {ticket.id} has no customer e-mail address")
    language = mailer.language_of(ticket.subject, ticket.body)
    in_reply_to, references = _thread(session, ticket)
    message = Message(
        ticket_id=ticket.id, kind="agent_reply", channel="email", agent_id=agent_id,
        sender=mailer.address_of(mail.mail_from) or None, recipient=ticket.customer_email.strip().lower(),
        subject=mailer.reply_subject(ticket, language), body=body, language=language,
        message_id=mailer.new_message_id(mail.mail_from), in_reply_to=in_reply_to, references=references,
        delivery="pending", attempts=0, created_at=utcnow(),
    )  # fmt: skip
    session.add(message)
    session.add(TicketEvent(ticket_id=ticket.id, kind="replied", detail="e-mail to the customer", agent_id=agent_id))
    session.flush()
    sla.record_first_response(session, ticket, message.created_at)  # stops the first-response clock, once
    return message


def add_note(session: Session, ticket: Ticket, agent_id: int | None, body: str) -> Message:
    """An internal note on the ticket: agents see it in the conversation, the customer never does."""
    message = Message(ticket_id=ticket.id, kind="note", channel="agent", agent_id=agent_id, body=body,
                      created_at=utcnow())
    session.add(message)
    session.flush()
    return message


def _thread(session: Session, ticket: Ticket) -> tuple[str | None, str | None]:
    """(In-Reply-To, References) for our next mail: the customer's newest mail we know the id of, and every id of
    the conversation in order (the first and the newest kept when there are too many)."""
    rows = session.execute(
        select(Message.kind, Message.message_id)
        .where(Message.ticket_id == ticket.id, Message.message_id.is_not(None),
               Message.kind.in_(("customer", "agent_reply", "acknowledgement")))
        .order_by(Message.created_at, Message.id)
    ).all()
    ids: list[str] = [message_id for _kind, message_id in rows if message_id]
    # The customer's first mail (tickets.message_id holds its dedupe key, mail_message_id its own id).
    first = ticket.mail_message_id
    if first:
        ids.insert(0, first)
    customer = [message_id for kind, message_id in rows if kind == "customer"]
    in_reply_to = customer[-1] if customer else first
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return in_reply_to, (" ".join(ids) or None)


# --- acknowledgements -----------------------------------------------------------------------------------------

ACKNOWLEDGED_CHANNELS = ("email", "web")


def queue_acknowledgement(session: Session, ticket: Ticket, mail: MailSettings,
                          now: datetime | None = None) -> Message | None:
    """Store the one automatic "we have your ticket" mail for a new ticket, or None (the reason is logged).

    None when: acknowledgements are off (ACKNOWLEDGE=off, or no SMTP_URL), the ticket came by another channel or
    has no customer address, the ticket was already acknowledged, the address never gets automatic mail, or that
    address was already acknowledged ACKNOWLEDGE_MAX_PER_HOUR times within the last hour (a mail loop or a flood).
    """
    now = now or utcnow()

    def skip(reason: str) -> None:
        log.info("no acknowledgement for ticket %s: %s", ticket.id, reason, extra={"ticket_id": str(ticket.id)})

    if not mail.acknowledges:
        return None
    if ticket.channel not in ACKNOWLEDGED_CHANNELS or not ticket.customer_email:
        return None
    recipient = ticket.customer_email.strip().lower()
    if session.scalar(select(Message.id).where(Message.ticket_id == ticket.id,
                                               Message.kind == "acknowledgement").limit(1)) is not None:
        skip("already acknowledged")
        return None
    if is_unacknowledgeable_address(recipient, (mailer.address_of(mail.mail_from),)):
        skip("the address never gets automatic mail")
        return None
    recent = session.scalar(
        select(func.count()).select_from(Message)
        .where(Message.recipient == recipient, Message.kind == "acknowledgement",
               Message.created_at >= now - timedelta(hours=1))
    ) or 0
    if recent >= mail.acknowledge_max_per_hour:
        skip(f"{recent} acknowledgements to this address within the hour (ACKNOWLEDGE_MAX_PER_HOUR)")
        return None
    language = mailer.language_of(ticket.subject, ticket.body)
    in_reply_to, references = _thread(session, ticket)
    message = Message(
        ticket_id=ticket.id, kind="acknowledgement", channel="email", sender=mailer.address_of(mail.mail_from),
        recipient=recipient, subject=mailer.acknowledgement_subject(ticket, language),
        body=mailer.acknowledgement_body(ticket, language, mail.public_url), language=language,
        message_id=mailer.new_message_id(mail.mail_from), in_reply_to=in_reply_to, references=references,
        delivery="pending", attempts=0, created_at=now,
    )  # fmt: skip
    session.add(message)
    session.flush()
    return message


# --- delivery -------------------------------------------------------------------------------------------------

def _changed(session: Session, statement: Update) -> int:
    """Run a conditional UPDATE; how many rows it changed (the Message objects in the session are not touched:
    claim refreshes the one it returns)."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount


def claim(session: Session, message_id: int, policy: RetryPolicy, now: datetime,
          lease_seconds: float = 300.0) -> Message | None:
    """Take the next attempt at a pending mail that is due: count it (attempts + 1), hold its lease, and return the
    message; None if it is not pending, not due yet, or another attempt holds it.

    Two guards, both committed by the caller before the SMTP transaction starts. The UPDATE is conditional on the
    attempts count read, so of two tasks racing for the same attempt (a retry and the sweep's re-publish) exactly
    one wins. The lease (a `job_leases` row `mail:<id>`, expiring after lease_seconds, longer than any SMTP
    transaction can last with its socket timeouts) keeps every other attempt out while this one talks to the server,
    however late the schedule says the next one is; recording the outcome deletes it, a crash lets it expire.
    """
    message = session.get(Message, message_id, populate_existing=True)
    if message is None or message.delivery != "pending" or policy.due_at(message) > now:
        return None
    seen = message.attempts
    try:
        with session.begin_nested():  # a lost race leaves nothing behind in the caller's transaction
            if not _take_lease(session, message_id, now, lease_seconds):
                raise _Lost
            if _changed(session, update(Message)
                        .where(Message.id == message_id, Message.delivery == "pending", Message.attempts == seen)
                        .values(attempts=seen + 1)) != 1:
                raise _Lost
    except _Lost:
        return None
    session.refresh(message)
    return message


class _Lost(Exception):
    """Another attempt holds this mail."""


def _lease_name(message_id: int) -> str:
    return f"mail:{message_id}"


def take_attempt_lease(session: Session, name: str, holder: str, now: datetime, seconds: float) -> bool:
    """Hold the lease `name` (one outbound attempt: a mail, a webhook delivery) for `seconds`, unless another
    attempt holds it unexpired. Shared by core.outbox and core.webhook_outbox."""
    expires = now + timedelta(seconds=seconds)
    lease = session.get(JobLease, name, populate_existing=True)
    if lease is None:
        try:
            with session.begin_nested():
                session.add(JobLease(name=name, holder=holder, acquired_at=now, expires_at=expires))
        except IntegrityError:  # taken meanwhile (PostgreSQL: after the other transaction committed)
            return False
        return True
    return _changed(session, update(JobLease)
                    .where(JobLease.name == name, or_(JobLease.expires_at.is_(None), JobLease.expires_at < now))
                    .values(holder=holder, acquired_at=now, expires_at=expires)) == 1


def release_attempt_lease(session: Session, name: str) -> None:
    session.execute(delete(JobLease).where(JobLease.name == name))


def _take_lease(session: Session, message_id: int, now: datetime, seconds: float) -> bool:
    return take_attempt_lease(session, _lease_name(message_id), "send_mail", now, seconds)


def _release(session: Session, message_id: int) -> None:
    release_attempt_lease(session, _lease_name(message_id))


def mark_sent(session: Session, message_id: int, now: datetime | None = None) -> bool:
    _release(session, message_id)
    return _changed(session, update(Message).where(Message.id == message_id, Message.delivery == "pending")
                    .values(delivery="sent", sent_at=now or utcnow(), last_error=None)) == 1


def mark_failed(session: Session, message_id: int, error: str) -> bool:
    _release(session, message_id)
    return _changed(session, update(Message).where(Message.id == message_id, Message.delivery == "pending")
                    .values(delivery="failed", last_error=error[:2000])) == 1


def note_error(session: Session, message_id: int, error: str) -> None:
    """An attempt failed and the mail stays pending: keep the error for the agent to see, free the next attempt."""
    _release(session, message_id)
    _changed(session, update(Message).where(Message.id == message_id, Message.delivery == "pending")
             .values(last_error=error[:2000]))


def pending_ids(session: Session, older_than: datetime, policy: RetryPolicy, now: datetime,
                limit: int = 500) -> list[int]:
    """Pending mail written before `older_than` whose next attempt is overdue by as long (for the sweep: its
    publish or its retry message was lost), oldest first."""
    grace = now - older_than
    rows = session.scalars(
        select(Message).where(Message.delivery == "pending", Message.created_at <= older_than)
        .order_by(Message.created_at).limit(limit)
    )
    return [message.id for message in rows if policy.due_at(message) + grace <= now]

