"""InboundMail → a new ticket, a reply on the ticket it continues, or automatic mail kept on the ticket it concerns
(or what an earlier delivery stored), and a line in the inbound log for every mail.

Automatic mail (core.automail: auto-replies, bounces, list mail) is judged first: it opens no ticket and is never
published; a bounce marks our outbound mail bounced. A person's mail is threaded (core.conversations.thread_target:
ids it names, the ticket's first mail, the subject tag, and only from the ticket's own customer) or becomes a
ticket. The customer's words are taken from the plain-text part (the HTML part when there is none), stripped of
quoted messages and signature, and stored with the mail's attachments (core.attachments: the first mail's on the
ticket, a reply's on its message; automatic mail's are not kept) and the inbound log line in one unit of work;
only a new ticket is then published (core.tickets.publish); never classified here. docs/email.md (Threading,
Automatic mail, Attachments) has the rules.

Deduplication: `Ticket.message_id` and `InboundEmail.dedupe_key` hold the same key, the SHA-256 (hex) of
  "message-id" + the Message-ID + the recipient, or, for a mail without a Message-ID,
  "content" + sender + Date + Subject + decoded body + recipient.
The recipient is part of it because one mail sent to two of our addresses is two requests; a hash rather than
"<id>|recipient" because a Message-ID can be up to 998 characters and the key must fit both columns. The unique
constraint on tickets.message_id settles races between two deliveries of the same mail. A reply or automatic mail
is a Message whose message_id is the mail's own Message-ID (so that later mail naming it threads), the key when it
has none; messages.message_id is unique, so a redelivered reply is stored once, whichever recipient it came to. The
first mail's own id is not stored: a reply naming it is found by computing the key it would have (first_mail_keys).
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.email.htmltext import html_to_text
from api.email.message import InboundMail, MailRejected
from api.email.reply import customer_words
from core.attachments import IncomingFile, store_attachments
from core.automail import automatic_reason, is_delivery_report
from core.conversations import (
    OUTBOUND_KINDS,
    add_automatic,
    add_customer_reply,
    candidate_ids,
    inbound_message,
    mark_bounced,
    thread_target,
    ticket_by_message_ids,
)
from core.orm import InboundEmail, Ticket
from core.runtime import Runtime
from core.tickets import NewTicket, publish, store_queued

log = logging.getLogger(__name__)

# Column sizes of tickets / inbound_emails.
SUBJECT_MAX, NAME_MAX, LOG_FIELD_MAX = 500, 200, 998
# Text beyond this many times MAX_BODY_CHARS is not looked at: the stored body is cut to MAX_BODY_CHARS anyway,
# and reply stripping and HTML parsing must stay fast on hostile input (a pasted log file, 40,000 nested <div>s).
SCAN_FACTOR = 3
HTML_SCAN_CHARS = 300_000
# A bounce's own words kept on the outbound message it returns (the reason an agent reads).
BOUNCE_TEXT_MAX = 2000
# Message kinds a webhook stores: a stored message of another kind with the mail's id is ours, not a redelivery.
INBOUND_KINDS = ("customer", "automatic")
# NUL and other C0 controls cannot be stored in PostgreSQL text (NUL) or mean nothing to an agent.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Outcome:
    ticket_id: uuid.UUID | None  # None: automatic mail that concerns no ticket (logged, nothing stored)
    duplicate: bool
    threaded: bool = False  # joined an existing ticket's conversation instead of opening one
    automatic: str | None = None  # why the mail was judged automatic (core.automail)


def accept(mail: InboundMail, runtime: Runtime) -> Outcome:
    """Store the mail: as a reply on the ticket it continues, as automatic mail on the ticket it concerns, or as a
    new ticket (or find what a previous delivery stored); MailRejected if it cannot be any of these.

    What is stored and its inbound log line commit together (one unit of work), so a database error leaves neither
    and the provider's retry (after our 5xx) is no duplicate; only a new ticket is published once committed."""
    reason = automatic_reason(_judged_headers(mail), mail.subject, mail.content_type)
    if reason is not None:
        return _accept_automatic(mail, reason, runtime)
    if not mail.sender_email:
        raise MailRejected("no sender address (From)", mail)
    source, body = _customer_text(mail, runtime.settings.max_body_chars)
    key = dedupe_key(mail, source)
    notes = "; ".join(mail.notes) or None
    created: Ticket | None = None
    with runtime.unit_of_work() as session:
        if (looped := _our_own(session, mail, key)) is not None:
            return looped
        if (earlier := _earlier_delivery(session, mail, key)) is not None:
            _record(session, mail, "duplicate", key=key, ticket_id=earlier.ticket_id, reason=notes)
            outcome = earlier
        elif (target := _thread_target(session, mail)) is not None:
            outcome = _add_reply(session, runtime, target, mail, key, body)
        else:
            ticket, fresh = store_queued(session, _new_ticket(mail, key, body))
            if fresh:
                notes = "; ".join([*mail.notes, *_store_files(session, runtime, mail, ticket.id, None)]) or None
            _record(session, mail, "accepted" if fresh else "duplicate", key=key, ticket_id=ticket.id, reason=notes)
            outcome = Outcome(ticket.id, duplicate=not fresh)
            created = ticket if fresh else None
    if created is not None:
        publish(runtime, created)
    what = "duplicate" if outcome.duplicate else "threaded" if outcome.threaded else "accepted"
    log.info("inbound %s mail %s: ticket %s (key %s)", mail.provider, what, outcome.ticket_id, key[:12],
             extra={"ticket_id": str(outcome.ticket_id)})
    return outcome


def _new_ticket(mail: InboundMail, key: str, body: str) -> NewTicket:
    return NewTicket(
        channel="email",
        body=body,
        subject=_clip(mail.subject, SUBJECT_MAX),
        customer_name=_clip(mail.sender_name, NAME_MAX),
        customer_email=_clean(mail.sender_email),
        message_id=key,
        mail_message_id=_own_message_id(mail),
        recipient=_clean(mail.recipient),
    )


def _earlier_delivery(session: Session, mail: InboundMail, key: str) -> Outcome | None:
    """What a previous delivery of this mail stored: a ticket (its first mail) or a reply on one."""
    ticket_id = session.scalar(select(Ticket.id).where(Ticket.message_id == key))
    if ticket_id is not None:
        return Outcome(ticket_id, duplicate=True)
    stored = inbound_message(session, _stored_id(mail, key))
    if stored is not None and stored.kind in INBOUND_KINDS:
        return Outcome(stored.ticket_id, duplicate=True, threaded=stored.kind == "customer",
                       automatic=stored.automatic)  # fmt: skip
    return None


def _our_own(session: Session, mail: InboundMail, key: str) -> Outcome | None:
    """A mail carrying the Message-ID of one we sent is our own mail come back (an address forwarding to our
    inbox, a list echoing it): stored nowhere, answered 200 so that nothing retries, bounces or answers it."""
    if not mail.message_id:
        return None
    stored = inbound_message(session, _stored_id(mail, key))
    if stored is None or stored.kind in INBOUND_KINDS:
        return None
    why = f"our own {stored.kind} mail came back"
    _record(session, mail, "rejected", key=key, ticket_id=None, reason=why)
    log.warning("inbound %s mail: %s (%s)", mail.provider, why, stored.message_id)
    return Outcome(None, duplicate=False, automatic=why)


def _thread_target(session: Session, mail: InboundMail) -> Ticket | None:
    return thread_target(
        session, sender=mail.sender_email, in_reply_to=mail.in_reply_to, references=mail.references,
        subject=mail.subject, ticket_keys=first_mail_keys(mail),
    )  # fmt: skip


def _add_reply(session: Session, runtime: Runtime, ticket: Ticket, mail: InboundMail, key: str, body: str) -> Outcome:
    was_resolved = ticket.status == "resolved"
    try:
        message = add_customer_reply(session, ticket, body=body, **_message_fields(mail, key))
    except IntegrityError:  # another delivery of this very mail committed first
        earlier = _earlier_delivery(session, mail, key)
        if earlier is None:
            raise
        _record(session, mail, "duplicate", key=key, ticket_id=earlier.ticket_id, reason="; ".join(mail.notes) or None)
        return earlier
    session.flush()  # the reply's id, which its attachments belong to
    dropped = _store_files(session, runtime, mail, ticket.id, message.id)
    reason = [f"threaded onto {ticket.reference}" + (" (reopened)" if was_resolved else ""), *mail.notes, *dropped]
    _record(session, mail, "accepted", key=key, ticket_id=ticket.id, reason="; ".join(reason))
    return Outcome(ticket.id, duplicate=False, threaded=True)


def _store_files(
    session: Session, runtime: Runtime, mail: InboundMail, ticket_id: uuid.UUID, message_id: int | None,
) -> list[str]:
    """The mail's attachments, in this unit of work: the first mail's on the ticket, a reply's on its message."""
    settings = runtime.settings
    files = (IncomingFile(f.filename, f.content_type, f.data) for f in mail.files)
    return store_attachments(session, ticket_id, files, message_id=message_id, max_bytes=settings.attachment_max_bytes,
                             max_bytes_per_mail=settings.attachments_max_bytes_per_mail)  # fmt: skip


def _accept_automatic(mail: InboundMail, reason: str, runtime: Runtime) -> Outcome:
    """Automatic mail opens no ticket, routes nothing and is never answered (RFC 3834: that is how mail loops
    start); it is kept on the ticket it concerns. A delivery report comes from MAILER-DAEMON, not the customer, so
    it is matched only by the Message-ID of the mail of ours it returns, and marks that mail bounced."""
    source = _automatic_text(mail, runtime.settings.max_body_chars)
    key = dedupe_key(mail, source)
    with runtime.unit_of_work() as session:
        if (looped := _our_own(session, mail, key)) is not None:
            return looped
        earlier = _earlier_delivery(session, mail, key)
        if earlier is not None:
            _record(session, mail, "duplicate", key=key, ticket_id=earlier.ticket_id, reason=reason)
            return Outcome(earlier.ticket_id, duplicate=True, automatic=reason)
        bounced = None
        if is_delivery_report(reason):
            ids = [*mail.report_ids, *candidate_ids(mail.in_reply_to, mail.references)]
            if _failed(mail):
                bounced = mark_bounced(session, ids, _bounce_error(mail, reason, source))
                ticket = session.get(Ticket, bounced.ticket_id) if bounced is not None else None
            else:  # "delayed, still trying" or a success notice: kept on the ticket, our mail is not bounced
                reason = f"{reason}; {', '.join(sorted(set(mail.report_actions)))}"
                ticket = ticket_by_message_ids(session, ids, OUTBOUND_KINDS)
        else:
            ticket = _thread_target(session, mail)
        if ticket is None:
            why = f"automatic mail ({reason}) for no ticket"
            _record(session, mail, "rejected", key=key, ticket_id=None, reason=why)
            log.info("inbound %s automatic mail for no ticket: %s", mail.provider, reason)
            return Outcome(None, duplicate=False, automatic=reason)
        try:
            add_automatic(session, ticket, reason, body=source, **_message_fields(mail, key))
        except IntegrityError:
            earlier = _earlier_delivery(session, mail, key)
            if earlier is None:
                raise
            _record(session, mail, "duplicate", key=key, ticket_id=earlier.ticket_id, reason=reason)
            return Outcome(earlier.ticket_id, duplicate=True, automatic=reason)
        detail = f"automatic mail ({reason}) on {ticket.reference}"
        if bounced is not None:
            detail += f"; marked our {bounced.kind} {bounced.message_id} bounced"
        _record(session, mail, "accepted", key=key, ticket_id=ticket.id, reason=detail)
    log.info("inbound %s automatic mail on ticket %s: %s", mail.provider, ticket.id, reason,
             extra={"ticket_id": str(ticket.id)})
    return Outcome(ticket.id, duplicate=False, automatic=reason)


def _judged_headers(mail: InboundMail) -> list[tuple[str, str]]:
    """The headers automail reads, with From added where the provider passed it as a field of its own."""
    if any(name.lower() == "from" for name, _ in mail.headers) or not mail.sender_email:
        return mail.headers
    return [*mail.headers, ("From", mail.sender_email)]


class _MessageFields(TypedDict):
    sender: str | None
    recipient: str | None
    subject: str | None
    message_id: str
    in_reply_to: str | None
    references: str | None


def _message_fields(mail: InboundMail, key: str) -> _MessageFields:
    return {
        "sender": _clean(mail.sender_email),
        "recipient": _clean(mail.recipient),
        "subject": _clip(mail.subject, LOG_FIELD_MAX),
        "message_id": _stored_id(mail, key),
        "in_reply_to": _clip(mail.in_reply_to, LOG_FIELD_MAX),
        "references": _clean(mail.references),
    }


def _stored_id(mail: InboundMail, key: str) -> str:
    """A Message's id: the mail's own Message-ID, so that a later reply naming it threads here; the dedupe key
    when it has none (or one too long for the column)."""
    return _own_message_id(mail) or key


def _own_message_id(mail: InboundMail) -> str | None:
    """The mail's own Message-ID when it fits the column and carries no control characters."""
    own = (mail.message_id or "").strip()
    return own if own and len(own) <= LOG_FIELD_MAX and _clean(own) == own else None


def first_mail_keys(mail: InboundMail) -> list[str]:
    """The tickets.message_id a ticket would hold if its first mail were one this mail names in In-Reply-To or
    References: how a reply to the customer's own first mail finds the ticket (the id itself is not stored)."""
    recipient = (mail.recipient or "").strip().lower()
    return [_message_id_key(message_id, recipient) for message_id in candidate_ids(mail.in_reply_to, mail.references)]


def _automatic_text(mail: InboundMail, max_chars: int) -> str:
    """What an agent is shown of automatic mail: its words without the quoted original, never a rejection."""
    source = _clean(mail.text) or ""
    if not source.strip() and mail.html:
        source = html_to_text((_clean(mail.html) or "")[:HTML_SCAN_CHARS])
    words = customer_words(source[: max_chars * SCAN_FACTOR]) or source.strip()
    return words[:max_chars]


def _failed(mail: InboundMail) -> bool:
    """A delivery report says our mail failed unless its delivery-status part shows only other actions (a
    webhook that parsed the report away shows none: then the report is taken for what most reports are, a failure).
    """
    return not mail.report_actions or "failed" in mail.report_actions


def _bounce_error(mail: InboundMail, reason: str, text: str) -> str:
    lines = [reason, *(f"{name}: {value}" for name, value in mail.headers if name.lower() == "x-failed-recipients")]
    if text:
        lines.append(text[:BOUNCE_TEXT_MAX])
    return "\n".join(lines)


def reject(runtime: Runtime, provider: str, error: MailRejected) -> None:
    """Log a mail that did not become a ticket; a database error propagates (5xx: the provider retries later)."""
    mail = error.mail or InboundMail(provider)
    key = dedupe_key(mail, "") if mail.message_id else None
    with runtime.unit_of_work() as session:
        _record(session, mail, "rejected", key=key, ticket_id=None, reason="; ".join([error.reason, *mail.notes]))
    log.warning("inbound %s mail rejected: %s", provider, error.reason)


def _customer_text(mail: InboundMail, max_chars: int) -> tuple[str, str]:
    """(decoded text the key is computed on, the customer's words to store)."""
    source = _clean(mail.text) or ""
    if not source.strip() and mail.html:
        html = _clean(mail.html) or ""
        source = html_to_text(html[:HTML_SCAN_CHARS])
        mail.notes.append("HTML only: converted to text")
    if not source.strip():
        raise MailRejected("no body text", mail)
    words = customer_words(source[: max_chars * SCAN_FACTOR])
    if not words:
        raise MailRejected("no body text after removing quoted messages and signature", mail)
    if len(words) > max_chars:
        mail.notes.append(f"body cut from {len(words)} to {max_chars} characters")
        words = words[:max_chars]
    return source, words


def dedupe_key(mail: InboundMail, source: str) -> str:
    recipient = (mail.recipient or "").strip().lower()
    if mail.message_id:
        return _message_id_key(mail.message_id, recipient)
    else:
        sender = (mail.sender_email or "").strip().lower()
        parts = ["content", sender, (mail.date or "").strip(), (mail.subject or "").strip(), source, recipient]
    return _hash(parts)


def _message_id_key(message_id: str, recipient: str) -> str:
    return _hash(["message-id", message_id.strip(), recipient])


def _hash(parts: list[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _record(
    session: Session, mail: InboundMail, outcome: str, *, key: str | None, ticket_id: uuid.UUID | None,
    reason: str | None,
) -> None:
    session.add(
        InboundEmail(
            provider=mail.provider,
            dedupe_key=key,
            outcome=outcome,
            reason=_clean(reason),
            ticket_id=ticket_id,
            sender=_clip(mail.sender_email or mail.sender_name, LOG_FIELD_MAX),
            subject=_clip(mail.subject, LOG_FIELD_MAX),
            attachments=mail.attachments,
        )
    )


def _clean(text: str | None) -> str | None:
    """Text a database and an agent can take: no control characters, no lone surrogates."""
    if text is None:
        return None
    text = _CONTROLS.sub("", text)
    return text.encode("utf-8", "replace").decode("utf-8") if any("\ud800" <= c <= "\udfff" for c in text) else text


def _clip(text: str | None, limit: int) -> str | None:
    text = (_clean(text) or "").strip()
    return text[:limit] or None
