"""Is this mail automatic (an auto-reply, a bounce, a list mailing), and may we answer this address?

Two auto-responders answering each other forever is the mail loop helpdesks keep shipping; RFC 3834 says how to
avoid it: recognise automatic mail by its headers, and never send an automatic answer to it. The judgement is
made from the headers alone, so it is pure: the intake uses it to keep such mail from opening tickets, the outbox
(acknowledgements) to keep from answering it.

What counts, in this order (the first rule that fires is the reason given):
- a delivery report, checked first because MTAs mark them Auto-Submitted too and a bounce is handled apart from an
  auto-reply (matched by our Message-ID, it marks our mail bounced): `Content-Type: multipart/report;
  report-type=delivery-status`, `X-Failed-Recipients`, or a From of MAILER-DAEMON;
- `Auto-Submitted` with any value but `no` (RFC 3834: auto-replied, auto-generated, auto-notified ...);
- `X-Autoreply`, `X-Autorespond` (older auto-responders; Exchange's `X-Auto-Response-Suppress` is NOT one: it asks
  others not to auto-reply and rides on ordinary mail Outlook users write);
- `Precedence: bulk | junk | list | auto_reply`;
- mailing-list headers `List-Id`, `List-Unsubscribe`;
- another `multipart/report` (a read receipt), or a null return path (`Return-Path: <>`: machines' mail only);
- an out-of-office subject, only when the marker opens the subject (`自動返信: ...`, `【不在】...`, `休暇のお知らせ`,
  `Automatic reply: ...`): a customer answering our mail writes `Re: ...` before whatever our subject said, and a
  customer may well write about a 不在票 (a missed-delivery slip) in their own words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from email.utils import parseaddr

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_FLAGS = ("x-autoreply", "x-autorespond")
_LISTS = ("list-id", "list-unsubscribe")
_NOT_SET = {"", "no", "false", "0"}
# At the very start of the subject, optionally in brackets: the words auto-responders put there.
_OPEN = r"^\s*[\[【(（<〈«]?\s*"
_OOO_SUBJECT = re.compile(
    _OPEN + r"(?:自動返信|自動応答|自動送信|自動転送|不在|休暇|外出)\s*[\]】)）>〉»:：]"
    r"|" + _OPEN + r"(?:不在|休暇|外出)(?:の|中|期間|通知|連絡|案内|メール)"
    r"|" + _OPEN + r"(?:automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|out of (?:the )?office"
    r"|away from (?:the )?office|on vacation|vacation reply)\b",
    re.IGNORECASE,
)
# Local parts that are never a person: answering them bounces, loops, or mails a list (RFC 3834 section 2).
# A From that only MTAs use (postmaster is also a person's role address, so it is not here).
_DAEMONS = {"mailer-daemon", "mail-daemon", "maildaemon"}
DELIVERY_REPORT = "delivery report"
_NO_REPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|bounces?|mailer-daemon|postmaster|mail-daemon"
    r"|maildaemon|listserv|majordomo|owner-.+|.+-request|.+-owner|.+-bounces?|auto[-_.]?reply|autoresponder)$",
    re.IGNORECASE,
)


def header_pairs(headers: Headers) -> list[tuple[str, str]]:
    """Headers as (lower-cased name, value stripped) pairs, in order; a Mapping gives one value per name."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name).strip().lower(), str(value).strip()) for name, value in items]


def automatic_reason(headers: Headers, subject: str | None, content_type: str | None) -> str | None:
    """Why the mail is automatic ("Auto-Submitted: auto-replied", ...), or None when a person wrote it.

    `content_type` is the top-level Content-Type header's value (it may also be among `headers`)."""
    pairs = header_pairs(headers)
    # Delivery reports first: MTAs put Auto-Submitted on them too, and a bounce must be told from an auto-reply
    # (it is matched to our mail by id and marks it bounced; an out-of-office means the mail arrived).
    report = _report_type(content_type or next((v for n, v in pairs if n == "content-type"), None))
    if report == "delivery-status":
        return f"{DELIVERY_REPORT} (multipart/report; report-type=delivery-status)"
    for name, value in pairs:
        if name == "x-failed-recipients":
            return f"{DELIVERY_REPORT} (X-Failed-Recipients: {value})"
    for name, value in pairs:
        if name == "from" and _local_part(value) in _DAEMONS:
            return f"{DELIVERY_REPORT} (From: {parseaddr(value)[1]})"
    for name, value in pairs:
        if name == "auto-submitted" and _token(value) != "no":
            return f"Auto-Submitted: {value}"
    for name, value in pairs:
        if name in _FLAGS and value.lower() not in _NOT_SET:
            return f"{_title(name)}: {value}"
    for name, value in pairs:
        if name == "precedence" and _token(value) in _PRECEDENCE:
            return f"Precedence: {value}"
    for name, value in pairs:
        if name in _LISTS:
            return f"mailing list ({_title(name)}: {value[:80]})"
    if report is not None:  # a read receipt (disposition-notification) or another machine's report
        return f"report (multipart/report; report-type={report or 'unknown'})"
    for name, value in pairs:
        if name == "return-path" and value.replace(" ", "") == "<>":
            return "null Return-Path (sent by a machine: RFC 3834 auto-replies and reports use it)"
    if subject and _OOO_SUBJECT.search(subject):
        return f"out-of-office subject ({subject.strip()[:60]})"
    return None


def is_unacknowledgeable_address(address: str | None, own_addresses: Iterable[str] = ()) -> bool:
    """True for an address no automatic answer may go to: none, noreply / MAILER-DAEMON / postmaster / list
    addresses, or one of our own (answering ourselves is the shortest loop there is)."""
    if not address:
        return True
    address = parseaddr(address)[1].strip().lower() or address.strip().lower()
    if "@" not in address:
        return True
    if address in {own.strip().lower() for own in own_addresses if own}:
        return True
    local = address.rsplit("@", 1)[0].split("+", 1)[0]
    return bool(_NO_REPLY.match(local))


def is_delivery_report(reason: str | None) -> bool:
    """A reason automatic_reason gives for a delivery status notification (a bounce: it comes from
    MAILER-DAEMON, not from the customer)."""
    return bool(reason) and str(reason).startswith(DELIVERY_REPORT)


def _token(value: str) -> str:
    """`auto-replied; owner-email="x@y"` → `auto-replied`."""
    return value.split(";", 1)[0].strip().lower()


def _title(name: str) -> str:
    return "-".join(part.capitalize() if part != "id" else "Id" for part in name.split("-"))


def _local_part(value: str) -> str:
    address = parseaddr(value)[1].strip().lower()
    return address.rsplit("@", 1)[0] if "@" in address else ""


def _report_type(content_type: str | None) -> str | None:
    """The report-type of a multipart/report ("" when it names none), None for any other content type. Parsed by
    hand: the value comes from any sender, and the stdlib's Message chokes on characters a header cannot hold."""
    if not content_type:
        return None
    main, _, params = content_type.partition(";")
    if main.strip().lower() != "multipart/report":
        return None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "report-type":
            return value.strip().strip('"').strip().lower()
    return ""
