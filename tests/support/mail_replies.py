"""Mail that answers our mail, built as the software that writes it does, and its delivery into a raw webhook.

- client_reply: a person answering in a real mail client: `Re:` subject, In-Reply-To our Message-ID, References
  extended, the new words above an attribution line (Thunderbird's `… さんは書きました:`, Gmail's `On … wrote:`)
  and the quoted mail with `> `.
- auto_reply: an auto-responder answering whatever arrives, in one of three manners: RFC 3834 (`Auto-Submitted:
  auto-replied`), a vacation program that marks nothing but its subject (`自動返信: …`), and a naive helpdesk that
  marks nothing at all and opens a conversation of its own (a fresh subject, no In-Reply-To): only the
  per-address acknowledgement limit stops that one.
- WebhookPoster: what an MX in front of furiwake does with mail for it: POST the bytes to /webhooks/email/raw,
  keeping every answer so that a test can assert none failed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Any

import requests

from tests.support.email_webhooks import basic_auth

AUTO_REPLY_STYLES = ("auto-submitted", "vacation", "unmarked")


def _mail(sender: tuple[str, str], to: str, subject: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = formataddr(sender)
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain=sender[1].rpartition("@")[2])
    return mail


def _set_body(mail: EmailMessage, body: str) -> bytes:
    mail.set_content(body, charset="utf-8", cte="base64")
    return mail.as_bytes()


def _thread_on(mail: EmailMessage, original: EmailMessage) -> None:
    mail["In-Reply-To"] = original["Message-ID"]
    mail["References"] = " ".join(filter(None, [original.get("References"), original["Message-ID"]]))


def _reply_subject(original: EmailMessage) -> str:
    subject = str(original["Subject"])
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def client_reply(original: EmailMessage, sender: tuple[str, str], words: str, client: str = "thunderbird") -> bytes:
    """The customer's answer to `original` (one of our mails), as Thunderbird (Japanese UI) or Gmail writes it."""
    mail = _mail(sender, parseaddr(str(original["From"]))[1], _reply_subject(original))
    _thread_on(mail, original)
    name, address = parseaddr(str(original["From"]))
    if client == "thunderbird":
        attribution = f"2026/12/03 12:00、{name or address} さんは書きました:"
    else:
        attribution = f"On Thu, Dec 3, 2026 at 12:00 PM {name} <{address}> wrote:"
    text = original.get_content() if not original.is_multipart() else ""
    quoted = "\n".join(f"> {line}" if line else ">" for line in str(text).rstrip("\n").split("\n"))
    return _set_body(mail, f"{words}\n\n{attribution}\n{quoted}\n")


def auto_reply(original: EmailMessage, sender: tuple[str, str], style: str, number: int = 1) -> bytes:
    """An auto-responder's answer to `original` (see the module docstring for the styles)."""
    to = parseaddr(str(original["From"]))[1]
    away = "ただいま休暇をいただいております。12月7日以降に順次ご返信いたします。\n"
    if style == "auto-submitted":
        mail = _mail(sender, to, _reply_subject(original))
        mail["Auto-Submitted"] = "auto-replied"
        _thread_on(mail, original)
    elif style == "vacation":  # procmail-era vacation programs: the subject is the only mark
        mail = _mail(sender, to, f"自動返信: {original['Subject']}")
        _thread_on(mail, original)
    elif style == "unmarked":  # a helpdesk acknowledging every mail as a new case of its own
        mail = _mail(sender, to, f"ご連絡ありがとうございます（受付 #{number}）")
        away = "お問い合わせを受け付けました。担当者よりご連絡いたします。\n"
    else:
        raise ValueError(f"unknown auto-reply style {style!r}")
    return _set_body(mail, away)


def post_raw(base: str, raw: bytes) -> requests.Response:
    # The webhook's credentials in UTF-8 (requests' own basic auth would encode them as Latin-1).
    return requests.post(f"{base}/webhooks/email/raw", data=raw, timeout=30,
                         headers={**basic_auth(), "Content-Type": "message/rfc822"})


@dataclass
class WebhookPoster:
    """Posts mail into one furiwake's raw webhook; keeps (status, JSON or text) of every post."""

    base: str = ""
    answers: list[tuple[int, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, raw: bytes) -> None:
        try:
            response = post_raw(self.base, raw)
            answer: tuple[int, Any] = (response.status_code, response.json() if response.ok else response.text)
        except requests.RequestException as exc:  # kept, and shown by the test's assertion
            answer = (0, f"{type(exc).__name__}: {exc}")
        with self.lock:
            self.answers.append(answer)

    def snapshot(self) -> list[tuple[int, Any]]:
        with self.lock:
            return list(self.answers)
