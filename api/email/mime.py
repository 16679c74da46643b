"""An RFC 822 message (raw pipe, SendGrid "send raw", Mailgun's MIME route) → InboundMail.

The stdlib parser (compat32: it never raises, it records defects) reads the structure; this module picks the
customer's text out of it: text/plain and text/html parts that are not attachments, transfer encodings undone
(base64, quoted-printable), charsets read with our fallbacks, format=flowed unwrapped. Attachments and attached
messages are handed over as files (name, type, bytes), not opened. A multipart whose boundary never appears is
broken MIME: rejected, since what the parser hands back is the raw MIME source, not the customer's words; unless
the body shows the boundary it really uses (an MTA's report that declares none, a mailer that declares one and
writes another): then it is read with that one. A part that cannot be read does not sink the readable parts beside
it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from api.email.charsets import Undecodable, decode_bytes
from api.email.headers import (
    decode_header_value,
    delivery_actions,
    first_address,
    header_list,
    message_id,
    parse_address,
    part_filename,
    raw_header,
    returned_message_id,
)
from api.email.message import InboundMail, MailFile, MailRejected

# A boundary line: "--" and 1 to 70 characters of RFC 2046's boundary alphabet.
_BOUNDARY_LINE = re.compile(r"^--[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")
# Defects meaning the parser could not find the parts a multipart promised.
_STRUCTURE_DEFECTS = {"StartBoundaryNotFoundDefect", "NoBoundaryInMultipartDefect", "MultipartInvariantViolationDefect"}


@dataclass
class _Parts:
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    attachments: int = 0
    files: list[MailFile] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    broken: bool = False
    undecodable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report_ids: list[str] = field(default_factory=list)
    report_actions: list[str] = field(default_factory=list)


def parse_rfc822(data: bytes, provider: str, recipient: str | None = None) -> InboundMail:
    """Parse one message; `recipient` (the envelope's, when the caller knows it) wins over the headers' guess."""
    if not data.strip():
        raise MailRejected("empty message")
    msg = BytesParser(policy=compat32).parsebytes(data)
    if not msg.keys():
        raise MailRejected("broken MIME: no header block")
    mail = InboundMail(provider)
    mail.sender_name, mail.sender_email, notes = parse_address(msg.get("From"))
    subject, subject_notes = decode_header_value(msg.get("Subject"))
    mail.subject = subject or None
    mail.message_id = message_id(msg.get("Message-ID"))
    mail.date = raw_header(msg.get("Date")) or None
    mail.in_reply_to = raw_header(msg.get("In-Reply-To")) or None
    mail.references = raw_header(msg.get("References")) or None
    mail.content_type = raw_header(msg.get("Content-Type")) or None
    mail.headers = header_list(msg.items())
    mail.recipient = recipient or first_address(msg.get("Delivered-To"), msg.get("X-Original-To"), msg.get("To"))
    parts = _Parts()
    _walk(msg, parts)
    mail.text = "\n\n".join(parts.texts) if parts.texts else None
    mail.html = "\n".join(parts.htmls) if parts.htmls else None
    mail.attachments = parts.attachments
    mail.files = parts.files
    mail.report_ids = parts.report_ids
    mail.report_actions = parts.report_actions
    mail.notes = notes + subject_notes + parts.notes
    if parts.defects:
        mail.notes.append("MIME defects: " + ", ".join(sorted(set(parts.defects))))
    if mail.text is None and mail.html is None:
        if parts.broken:
            raise MailRejected("broken MIME: " + ", ".join(sorted(set(parts.defects)) or ["no parts"]), mail)
        if parts.undecodable:
            raise MailRejected("undecodable body: " + "; ".join(parts.undecodable), mail)
    return mail


def _walk(part: Message, found: _Parts) -> None:
    found.defects.extend(type(defect).__name__ for defect in part.defects)
    ctype = part.get_content_type()
    original = returned_message_id(part)
    if original:
        found.report_ids.append(original)
    if ctype == "message/delivery-status":
        found.report_actions += delivery_actions(part)
        return  # per-recipient status fields, not words
    if ctype == "message/rfc822" or (part.get_content_disposition() == "attachment"):
        _attach(part, found)  # a forwarded-as-attachment mail is an attachment, not the customer's words
        return
    if ctype.startswith("multipart/") and not part.is_multipart():
        recovered = _with_found_boundary(part)
        if recovered is not None:
            found.notes.append(f"{ctype}: declared boundary missing or unused; read with the boundary its body shows")
            part = recovered
    if part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _walk(sub, found)
        return
    if ctype.startswith("multipart/"):
        found.broken = True  # a multipart the parser could not split: its payload is raw MIME source
        return
    if part.get_filename() is not None or ctype not in ("text/plain", "text/html"):
        _attach(part, found)
        return
    text = _decode_part(part, found)
    if text is None:
        return
    (found.texts if ctype == "text/plain" else found.htmls).append(text)


def _attach(part: Message, found: _Parts) -> None:
    """Count the part and keep its bytes (an attached mail as its source), named as the sender named it."""
    found.attachments += 1
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        try:
            data = inner[0].as_bytes() if isinstance(inner, list) and inner and isinstance(inner[0], Message) else b""
        except (UnicodeError, LookupError, ValueError):  # a malformed attached mail: counted, not kept
            data = b""
    else:
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    name, notes = part_filename(part)
    found.notes.extend(f"attachment name: {note}" for note in notes)
    found.files.append(MailFile(name, part.get_content_type(), data))


def _with_found_boundary(part: Message) -> Message | None:
    """A multipart declared without a boundary: the body's first `--token` line that comes back later (and again
    as `--token--`, or at least twice) is the boundary the sender forgot to declare. None when there is none."""
    payload = part.get_payload(decode=True)  # the body's bytes as sent (no transfer encoding on a multipart)
    if not isinstance(payload, bytes):
        return None
    lines = payload.decode("ascii", "surrogateescape").splitlines()
    candidates = [line[2:].rstrip() for line in lines if _BOUNDARY_LINE.match(line)]
    for token in dict.fromkeys(candidates):
        if candidates.count(token) >= 2 or f"{token}--" in candidates:
            head = f'Content-Type: {part.get_content_type()}; boundary="{token}"\r\n\r\n'.encode("ascii")
            recovered = BytesParser(policy=compat32).parsebytes(head + payload)
            return recovered if recovered.is_multipart() else None
    return None


def _decode_part(part: Message, found: _Parts) -> str | None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    label = part.get_param("charset")
    charset = label if isinstance(label, str) else None
    try:
        decoded = decode_bytes(payload, charset)
    except Undecodable as exc:
        found.undecodable.append(f"{part.get_content_type()}: {exc}")
        return None
    if decoded.note:
        found.notes.append(f"{part.get_content_type()}: {decoded.note}")
    text = decoded.text.replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_type() == "text/plain" and str(part.get_param("format", "")).lower() == "flowed":
        text = unflow(text, delsp=str(part.get_param("delsp", "")).lower() == "yes")
    return text


def unflow(text: str, delsp: bool = False) -> str:
    """RFC 3676: a line ending in a space continues on the next; with DelSp=yes that space is not part of the text
    (how Japanese mailers wrap long lines without putting spaces between characters)."""
    lines: list[str] = []
    pending = ""
    for line in text.split("\n"):
        line = line[1:] if line.startswith(" ") else line  # space-stuffing
        if line.endswith(" ") and line != "-- ":
            pending += line[:-1] if delsp else line
        else:
            lines.append(pending + line)
            pending = ""
    if pending:
        lines.append(pending)
    return "\n".join(lines)
