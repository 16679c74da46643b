"""InboundMail → one ticket (or the ticket an earlier delivery made), and a line in the inbound log for every mail.

The customer's words are taken from the plain-text part (the HTML part when there is none), stripped of quoted
messages and signature, and stored as a NewTicket with its inbound log line in one unit of work; then the ticket is
published (core.tickets.publish); never classified here.

Deduplication: `Ticket.message_id` and `InboundEmail.dedupe_key` hold the same key, the SHA-256 (hex) of
  "message-id" + the Message-ID + the recipient, or, for a mail without a Message-ID,
  "content" + sender + Date + Subject + decoded body + recipient.
The recipient is part of it because one mail sent to two of our addresses is two requests; a hash rather than
"<id>|recipient" because a Message-ID can be up to 998 characters and the key must fit both columns. The unique
constraint on tickets.message_id settles races between two deliveries of the same mail.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from api.email.htmltext import html_to_text
from api.email.message import InboundMail, MailRejected
from api.email.reply import customer_words
from core.orm import InboundEmail
from core.runtime import Runtime
from core.tickets import NewTicket, publish, store_queued

log = logging.getLogger(__name__)

# Column sizes of tickets / inbound_emails.
SUBJECT_MAX, NAME_MAX, LOG_FIELD_MAX = 500, 200, 998
# Text beyond this many times MAX_BODY_CHARS is not looked at: the stored body is cut to MAX_BODY_CHARS anyway,
# and reply stripping and HTML parsing must stay fast on hostile input (a pasted log file, 40,000 nested <div>s).
SCAN_FACTOR = 3
HTML_SCAN_CHARS = 300_000
# NUL and other C0 controls cannot be stored in PostgreSQL text (NUL) or mean nothing to an agent.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Outcome:
    ticket_id: uuid.UUID
    duplicate: bool


def accept(mail: InboundMail, runtime: Runtime) -> Outcome:
    """Store the mail as a ticket (or find the one a previous delivery stored); MailRejected if it cannot be one.

    The ticket and its inbound log line commit together (one unit of work), so a database error leaves neither and
    the provider's retry (after our 5xx) is no duplicate; the ticket is published once committed."""
    if not mail.sender_email:
        raise MailRejected("no sender address (From)", mail)
    source, body = _customer_text(mail, runtime.settings.max_body_chars)
    key = dedupe_key(mail, source)
    new = NewTicket(
        channel="email",
        body=body,
        subject=_clip(mail.subject, SUBJECT_MAX),
        customer_name=_clip(mail.sender_name, NAME_MAX),
        customer_email=_clean(mail.sender_email),
        message_id=key,
    )
    with runtime.unit_of_work() as session:
        ticket, created = store_queued(session, new)
        outcome = "accepted" if created else "duplicate"
        _record(session, mail, outcome, key=key, ticket_id=ticket.id, reason="; ".join(mail.notes) or None)
    if created:
        ticket = publish(runtime, ticket)
    log.info("inbound %s mail %s: ticket %s (key %s)", mail.provider, outcome, ticket.id, key[:12],
             extra={"ticket_id": str(ticket.id)})
    return Outcome(ticket.id, duplicate=not created)


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
        parts = ["message-id", mail.message_id.strip(), recipient]
    else:
        sender = (mail.sender_email or "").strip().lower()
        parts = ["content", sender, (mail.date or "").strip(), (mail.subject or "").strip(), source, recipient]
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
