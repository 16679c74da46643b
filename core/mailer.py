"""Outbound mail: what an agent's reply or an acknowledgement looks like on the wire, and handing it to SMTP.

Encoding: UTF-8, declared (`Content-Type: text/plain; charset="utf-8"`) and transferred as base64 when the text
is not ASCII, so it survives any relay (no 8BITMIME or SMTPUTF8 needed); the subject and display names are RFC 2047
encoded words. Not ISO-2022-JP: it cannot carry what customers do write (emoji, circled numbers, IBM extension
kanji such as 髙, most non-Japanese scripts), and a reply that drops a character of the customer's own name is
worse than none; every mail client in use in Japan reads UTF-8.

The Message-ID is made once, when the mail is queued (core.outbox), and stored: every attempt sends the same id,
so a receiver that deduplicates on it (most do) shows a mail sent twice by the one unavoidable window once.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr

from core.config import MailSettings
from core.conversations import reference_tag
from core.orm import Message, Ticket

LANGUAGES = ("ja", "en")
# Hiragana, katakana (full and half width) and CJK ideographs: text with any of them is answered in Japanese.
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
# A reply prefix already there (Re:, RE:, Fwd:, 返信:, ...): `Re:` is not stacked on top of it.
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|返信|回答)\s*[:：]", re.IGNORECASE)

_TEXTS = {
    "ja": {
        "no_subject": "お問い合わせ",
        "ack_subject": "お問い合わせを受け付けました",
        "ack_body": (
            "{name}様\n\n"
            "お問い合わせいただきありがとうございます。以下の受付番号で承りました。\n\n"
            "受付番号: {reference}\n"
            "状況の確認: {link}\n\n"
            "担当窓口より、このメールアドレスへご返信いたします。\n"
            "このメールに返信される場合は、件名の受付番号 {tag} を消さずにお送りください。\n\n"
            "※このメールは送信専用の自動応答です。\n"
        ),
        "customer": "お客",
    },
    "en": {
        "no_subject": "Your question",
        "ack_subject": "We have received your question",
        "ack_body": (
            "Dear {name},\n\n"
            "Thank you for contacting us. We have received your question under this reference:\n\n"
            "Reference: {reference}\n"
            "Follow it here: {link}\n\n"
            "The team will reply to this e-mail address.\n"
            "If you reply to this mail, please keep the reference {tag} in the subject.\n\n"
            "This is an automatic reply.\n"
        ),
        "customer": "customer",
    },
}


class SendError(Exception):
    """The mail was not accepted. `permanent`: the server refused it for good (5xx), retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


def language_of(*texts: str | None) -> str:
    """The language to answer in: Japanese if the customer wrote any Japanese, else English."""
    return "ja" if any(text and _JAPANESE.search(text) for text in texts) else "en"


def address_of(mail_from: str) -> str:
    """The bare address of MAIL_FROM (`Support <support@example.com>` → `support@example.com`), lower-cased."""
    return parseaddr(mail_from)[1].lower()


def new_message_id(mail_from: str) -> str:
    """A fresh `<...@domain>` with MAIL_FROM's domain (a receiver may check that the two agree)."""
    return make_msgid(domain=address_of(mail_from).rpartition("@")[2] or None)


def reply_subject(ticket: Ticket, language: str) -> str:
    """`Re: <the customer's subject> [T-…]`: the tag threads the customer's next answer onto this ticket."""
    subject = " ".join((ticket.subject or "").split()) or _TEXTS[language]["no_subject"]
    if not _REPLY_PREFIX.match(subject):
        subject = f"Re: {subject}"
    tag = reference_tag(ticket.reference)
    return subject if tag in subject.upper() else f"{subject} {tag}"


def acknowledgement_subject(ticket: Ticket, language: str) -> str:
    return f"{_TEXTS[language]['ack_subject']} {reference_tag(ticket.reference)}"


def acknowledgement_body(ticket: Ticket, language: str, public_url: str) -> str:
    texts = _TEXTS[language]
    return texts["ack_body"].format(
        name=ticket.customer_name or texts["customer"],
        reference=ticket.reference,
        tag=reference_tag(ticket.reference),
        link=f"{public_url}/tickets/{ticket.id}?lang={language}",
    )


def build(message: Message, mail_from: str) -> EmailMessage:
    """The mail for a stored outbound Message (agent_reply or acknowledgement), exactly as every attempt sends it."""
    if message.kind not in ("agent_reply", "acknowledgement") or not message.recipient or not message.message_id:
        raise ValueError(f"message {message.id} is not outbound mail")
    mail = EmailMessage()
    mail["From"] = mail_from
    mail["To"] = message.recipient
    mail["Subject"] = message.subject or ""
    mail["Date"] = format_datetime(message.created_at)  # when it was written: the same on every attempt
    mail["Message-ID"] = message.message_id
    if message.in_reply_to:
        mail["In-Reply-To"] = message.in_reply_to
    if message.references:
        mail["References"] = message.references
    if message.kind == "acknowledgement":
        # RFC 3834: an automatic reply, which other responders must not answer (no auto-reply ping-pong);
        # Exchange's own equivalent asks it to send no out-of-office or read receipt back.
        mail["Auto-Submitted"] = "auto-replied"
        mail["X-Auto-Response-Suppress"] = "All"
    body = message.body if message.body.endswith("\n") else message.body + "\n"
    mail.set_content(body, charset="utf-8", cte="7bit" if body.isascii() else "base64")
    if message.language:  # after set_content, which drops every Content-* header set before it
        mail["Content-Language"] = message.language
    return mail


def send(mail: MailSettings, message: EmailMessage) -> None:
    """One SMTP transaction for one mail, per SMTP_URL; raises SendError (permanent for a 5xx refusal).

    Authentication and TLS failures are not permanent: they are the installation's to fix, and the mail should go
    once they are. Neither is a server that does not answer.
    """
    server = mail.smtp
    if server is None:
        raise SendError("SMTP_URL is not set", permanent=False)
    envelope_from = address_of(mail.mail_from)
    recipients = [address for _name, address in getaddresses(message.get_all("To", []))]
    try:
        client: smtplib.SMTP
        if server.scheme == "smtps":
            client = smtplib.SMTP_SSL(server.host, server.port, timeout=mail.smtp_timeout_seconds,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=mail.smtp_timeout_seconds)
        with client:
            if server.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())  # raises if not offered: never plain text
            if server.username:
                client.login(server.username, server.password)
            refused = client.send_message(message, from_addr=envelope_from, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _text in exc.recipients.values()]
        raise SendError(f"recipient refused: {_describe(exc.recipients)}",
                        permanent=all(500 <= code < 600 for code in codes)) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise SendError(f"SMTP authentication failed ({exc.smtp_code})", permanent=False) from exc
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise SendError(f"{exc.smtp_code} {text}".strip(), permanent=500 <= exc.smtp_code < 600) from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused connection, timeout, TLS, no STARTTLS offered
        raise SendError(f"{type(exc).__name__}: {exc}", permanent=False) from exc
    if refused:  # one recipient only, so a partial refusal cannot happen; kept honest all the same
        raise SendError(f"recipient refused: {_describe(refused)}", permanent=True)


def _describe(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{code} {text.decode('utf-8', 'replace')}" for code, text in refused.values())
