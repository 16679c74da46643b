"""A ticket's conversation: the entries after the first message, threading mail onto a ticket, automatic mail.

The customer's first message is the ticket itself (tickets.body, what the model routes); every later entry is a
core.orm.Message: customer replies, agent replies, internal notes, our acknowledgements, automatic mail.

The tag is the ticket's reference in square brackets, e.g. `[T-7KQ2M9XA]`: every mail we send carries it in the
subject, and a reply whose subject still carries it (through `Re:`, `RE:`, `Fw:`, `返信:`, `転送:` ...) is threaded
onto that ticket even when the customer's client dropped In-Reply-To and References.

Threading (thread_target) looks for the ticket a mail answers, in this order:
1. a Message-ID named by In-Reply-To, then by References (newest first), that is a stored Message's id: our
   outbound mail (acknowledgement, agent reply) or an earlier reply the customer sent;
2. the keys the intake derived from those ids for the ticket's FIRST mail (tickets.message_id holds a hash of the
   first mail's Message-ID, not the id: see api/email/intake.py), passed in as `ticket_keys`;
3. the subject tag.
The first ticket found is the candidate; it is the answer only when the mail's sender IS the ticket's customer
(addresses compared trimmed and case-insensitively). Any other sender gets None: a new ticket. Attaching one
person's mail to another's ticket would show it to the wrong customer in every later reply we send; a colleague
answering in the customer's place gets a ticket of their own, which an agent can read side by side.

Service functions take a Session and never commit (the entry point's unit of work does).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from core.orm import Message, Ticket, TicketEvent, utcnow

# core.orm.new_reference: "T-" and eight characters of a look-alike-free alphabet.
_TAG = re.compile(r"\[(T-[2-9A-HJKMNP-Z]{8})\]")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# Kinds of Message that are mail we sent: a bounce can only concern these.
OUTBOUND_KINDS = ("acknowledgement", "agent_reply")
# References can list a whole thread; a hostile one could list thousands of ids. The newest are the ones that matter.
MAX_REFERENCES = 50
SENDER_MAX = 320
MESSAGE_ID_MAX = 998  # messages.message_id: a longer id cannot be one we stored


def reference_tag(reference: str) -> str:
    """The subject tag for a ticket's reference: `[T-7KQ2M9XA]`."""
    return f"[{reference}]"


def tagged_reference(subject: str | None) -> str | None:
    """The reference a subject's tag names (the last tag, if several were quoted in), or None."""
    if not subject:
        return None
    found = _TAG.findall(subject.upper())
    return found[-1] if found else None


def message_ids(value: str | None) -> list[str]:
    """The `<id@host>` tokens of an In-Reply-To or References header, in header order."""
    return _MESSAGE_ID.findall(value or "")


def entries(session: Session, ticket_id: uuid.UUID) -> list[Message]:
    """The conversation after the first message, oldest first (ties by insertion order)."""
    return list(
        session.scalars(
            select(Message).where(Message.ticket_id == ticket_id).order_by(Message.created_at, Message.id)
        )
    )


def same_address(a: str | None, b: str | None) -> bool:
    return bool(a and b) and str(a).strip().lower() == str(b).strip().lower()


def candidate_ids(in_reply_to: str | None, references: str | None) -> list[str]:
    """The ids a reply names, most telling first: In-Reply-To, then References newest first; no repeats."""
    ids = message_ids(in_reply_to)[:MAX_REFERENCES] + list(reversed(message_ids(references)[-MAX_REFERENCES:]))
    return [found for found in dict.fromkeys(ids) if _storable(found)][:MAX_REFERENCES]


def _storable(message_id: str) -> bool:
    """An id that could be in messages.message_id: not too long, no control characters or lone surrogates (which
    PostgreSQL would refuse in the query itself, failing the whole mail)."""
    return len(message_id) <= MESSAGE_ID_MAX and not any(
        ord(ch) < 0x20 or ord(ch) == 0x7F or "\ud800" <= ch <= "\udfff" for ch in message_id
    )


def ticket_by_message_ids(session: Session, ids: Iterable[str], kinds: Iterable[str] | None = None) -> Ticket | None:
    """The ticket of the first id (in the given order) that is a stored Message's id, optionally of given kinds."""
    ids = list(ids)
    if not ids:
        return None
    query = select(Message.message_id, Message.ticket_id).where(Message.message_id.in_(ids))
    if kinds is not None:
        query = query.where(Message.kind.in_(tuple(kinds)))
    found = {message_id: ticket_id for message_id, ticket_id in session.execute(query)}
    for message_id in ids:
        if message_id in found:
            return session.get(Ticket, found[message_id])
    return None


def thread_target(
    session: Session, *, sender: str | None, in_reply_to: str | None, references: str | None, subject: str | None,
    ticket_keys: Iterable[str] = (),
) -> Ticket | None:
    """The ticket this mail continues, or None (it opens a new one): see the module docstring for the rules."""
    ticket = ticket_by_message_ids(session, candidate_ids(in_reply_to, references))
    if ticket is None:
        keys = list(ticket_keys)
        if keys:
            ticket = session.scalars(select(Ticket).where(Ticket.message_id.in_(keys)).limit(1)).first()
    if ticket is None:
        reference = tagged_reference(subject)
        if reference is not None:
            ticket = session.scalars(select(Ticket).where(Ticket.reference == reference)).first()
    if ticket is None or not same_address(sender, ticket.customer_email):
        return None
    return ticket


def add_customer_reply(
    session: Session, ticket: Ticket, *, body: str, sender: str | None, recipient: str | None = None,
    subject: str | None = None, message_id: str | None = None, in_reply_to: str | None = None,
    references: str | None = None, channel: str = "email",
) -> Message:
    """Append the customer's reply; a resolved ticket is reopened. The reply is not routed again: the ticket keeps
    its route (the conversation is about what the first message asked, and an agent can re-route it)."""
    message = Message(
        ticket_id=ticket.id, kind="customer", channel=channel, sender=_clip(sender, SENDER_MAX),
        recipient=_clip(recipient, SENDER_MAX), subject=_clip(subject, 998), body=body, message_id=message_id,
        in_reply_to=_clip(in_reply_to, 998), references=references, created_at=utcnow(),
    )  # fmt: skip
    _add_unique(session, message)
    reopen(session, ticket, f"customer replied by {channel}")
    return message


def reopen(session: Session, ticket: Ticket, detail: str) -> bool:
    """The inverse of core.agents.resolve: a resolved ticket goes back to `routed` (to `needs_review` if it was
    resolved before it had a route, so that an agent sees it), resolved_at cleared, a "reopened" event. The UPDATE
    is conditional, so two replies arriving together reopen it once."""
    status = "routed" if ticket.route is not None else "needs_review"
    statement = (
        update(Ticket).where(Ticket.id == ticket.id, Ticket.status == "resolved")
        .values(status=status, resolved_at=None)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    changed = cast(CursorResult[Any], session.execute(statement)).rowcount
    if not changed:
        return False
    session.refresh(ticket, ["status", "resolved_at"])
    session.add(TicketEvent(ticket_id=ticket.id, kind="reopened", detail=detail, created_at=utcnow()))
    return True


def add_automatic(
    session: Session, ticket: Ticket, reason: str, *, body: str, sender: str | None, recipient: str | None = None,
    subject: str | None = None, message_id: str | None = None, in_reply_to: str | None = None,
    references: str | None = None, channel: str = "email",
) -> Message:
    """Store an auto-reply, bounce or list mail on the ticket it concerns: shown to agents, never routed, never
    answered, and it does not reopen a resolved ticket (an out-of-office is nobody asking anything)."""
    message = Message(
        ticket_id=ticket.id, kind="automatic", channel=channel, sender=_clip(sender, SENDER_MAX),
        recipient=_clip(recipient, SENDER_MAX), subject=_clip(subject, 998), body=body, message_id=message_id,
        in_reply_to=_clip(in_reply_to, 998), references=references, automatic=_clip(reason, 200),
        created_at=utcnow(),
    )  # fmt: skip
    _add_unique(session, message)
    return message


def inbound_message(session: Session, message_id: str) -> Message | None:
    """The stored Message with this id, if any (an earlier delivery of the same mail, or a mail of ours)."""
    return session.scalars(select(Message).where(Message.message_id == message_id)).first()


def _add_unique(session: Session, message: Message) -> None:
    """Insert in a savepoint: when two deliveries of one mail race past the caller's look-up, the loser's
    IntegrityError (messages.message_id is unique) leaves the caller's transaction usable, to read the winner."""
    if message.message_id is None:
        session.add(message)
        return
    with session.begin_nested():
        session.add(message)


def mark_bounced(session: Session, ids: Iterable[str], error: str) -> Message | None:
    """Mark the outbound message a delivery report names (the first of `ids` that is one of ours) `bounced`,
    keeping the report's words as last_error; None when none of the ids is mail we sent."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return None
    ours = {
        message.message_id: message
        for message in session.scalars(
            select(Message).where(Message.message_id.in_(ids), Message.kind.in_(OUTBOUND_KINDS))
        )
    }
    for message_id in ids:
        message = ours.get(message_id)
        if message is not None:
            message.delivery = "bounced"
            message.last_error = error
            return message
    return None


def _clip(text: str | None, limit: int) -> str | None:
    return text[:limit] if text else None
