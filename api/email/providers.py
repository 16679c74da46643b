"""Each provider's payload → InboundMail. Field names and shapes follow the providers' inbound documentation.

SendGrid sends fields in the mail's own charsets (its `charsets` field names them); Mailgun and Postmark have
already decoded to UTF-8. Where a provider offers the raw MIME (SendGrid "send raw", Mailgun's MIME route) the
raw message is parsed instead, which keeps the original charsets and headers.
"""

from __future__ import annotations

import base64
import binascii
import json
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import formataddr
from typing import Any

from api.email.charsets import Undecodable, decode_bytes
from api.email.formdata import Form, FormFile
from api.email.headers import (
    REPORT_SCAN,
    decode_header_value,
    first_address,
    header_list,
    message_id,
    original_message_id,
    parse_address,
    raw_header,
)
from api.email.message import InboundMail, MailFile, MailRejected
from api.email.mime import parse_rfc822


def sendgrid(form: Form) -> InboundMail:
    """Inbound Parse: parsed fields (`text`, `html`, `headers`, `charsets`, ...) or, with "send raw", `email`."""
    envelope = _json_object(form.text("envelope"))
    to = envelope.get("to")
    recipient = first_address(*(str(t) for t in (to if isinstance(to, list) else [to or ""])), form.text("to"))
    raw = form.get("email")
    if raw:
        mail = parse_rfc822(raw, "sendgrid", recipient)
        mail.attachments = max(mail.attachments, form.files)
        mail.report_ids += form.report_ids
        return mail
    charsets = {str(k).lower(): str(v) for k, v in _json_object(form.text("charsets")).items()}
    mail = InboundMail("sendgrid", recipient=recipient)
    undecodable: list[str] = []

    def field(name: str) -> str | None:
        data = form.get(name)
        if not data:
            return None
        try:
            decoded = decode_bytes(data, charsets.get(name, "utf-8"))
        except Undecodable as exc:
            undecodable.append(f"{name}: {exc}")
            return None
        if decoded.note:
            mail.notes.append(f"{name}: {decoded.note}")
        return decoded.text.replace("\r\n", "\n")

    headers = HeaderParser(policy=compat32).parsestr(field("headers") or "")
    _fill_from_headers(mail, field("from") or raw_header(headers.get("From")), field("subject"))
    mail.text, mail.html = field("text"), field("html")
    mail.message_id = message_id(headers.get("Message-ID"))
    mail.date = raw_header(headers.get("Date")) or None
    mail.attachments = _count(form.text("attachments"), form.files)
    mail.files = _sendgrid_files(form)
    mail.headers = header_list(headers.items())
    _fill_threading(mail, _first_of_each(mail.headers), form.report_ids)
    mail.notes.extend(f"undecodable {what}" for what in undecodable)
    if mail.text is None and mail.html is None and any(u.startswith(("text", "html")) for u in undecodable):
        raise MailRejected("undecodable body: " + "; ".join(undecodable), mail)
    return mail


def mailgun(form: Form) -> InboundMail:
    """Route forward: `body-plain`, `body-html`, `message-headers` ([[name, value], ...]) ...; or `body-mime`."""
    recipient = first_address(form.text("recipient"))
    raw = form.get("body-mime")
    if raw:
        mail = parse_rfc822(raw, "mailgun", recipient)
        mail.attachments = max(mail.attachments, form.files)
        mail.report_ids += form.report_ids
        return mail
    mail = InboundMail("mailgun", recipient=recipient)
    mail.headers = _header_pairs(form.text("message-headers"))
    headers = _first_of_each(mail.headers)
    for name in ("In-Reply-To", "References", "Content-Type"):  # also posted as fields of their own
        if name.lower() not in headers and form.text(name):
            headers[name.lower()] = form.text(name)
    _fill_from_headers(mail, form.text("from") or form.text("sender"), form.text("subject"))
    mail.text = _utf8(form, "body-plain") or _utf8(form, "stripped-text")
    mail.html = _utf8(form, "body-html")
    mail.message_id = message_id(headers.get("message-id"))
    mail.date = headers.get("date")
    mail.attachments = _count(form.text("attachment-count"), form.files)
    mail.files = [_file(upload) for upload in form.uploads]
    _fill_threading(mail, headers, form.report_ids)
    return mail


def postmark(body: bytes) -> InboundMail:
    """Inbound webhook JSON: `FromFull`, `Subject`, `TextBody`, `HtmlBody`, `Headers` [{Name, Value}], ..."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MailRejected("payload is not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise MailRejected("payload is not a JSON object")
    return _postmark_mail(payload)


def _postmark_mail(payload: dict[str, Any]) -> InboundMail:
    if not (_str(payload.get("TextBody")) or _str(payload.get("HtmlBody"))) and _str(payload.get("RawEmail")):
        return _postmark_raw(payload)
    pairs = [
        (str(header.get("Name", "")), str(header.get("Value", "")))
        for header in _list(payload.get("Headers"))
        if isinstance(header, dict)
    ]
    headers = _first_of_each(pairs)
    full = _dict(payload.get("FromFull"))
    to_full = _list(payload.get("ToFull"))
    mail = InboundMail(
        "postmark",
        recipient=first_address(
            _str(payload.get("OriginalRecipient")),
            *(_str(t.get("Email")) for t in to_full if isinstance(t, dict)),
            _str(payload.get("To")),
        ),
    )
    _fill_from_headers(mail, _str(payload.get("From")), _str(payload.get("Subject")))
    if "@" in _str(full.get("Email")):  # FromFull is already split; the From string is the fallback
        mail.sender_email, mail.sender_name = _str(full.get("Email")), _str(full.get("Name")) or mail.sender_name
    from_value = _str(payload.get("From")) or formataddr((mail.sender_name or "", mail.sender_email or ""))
    mail.text = _str(payload.get("TextBody")) or _str(payload.get("StrippedTextReply"))
    mail.html = _str(payload.get("HtmlBody"))
    mail.message_id = message_id(headers.get("message-id"))
    mail.date = _str(payload.get("Date")) or headers.get("date")
    mail.attachments = len(_list(payload.get("Attachments")))
    mail.files = _postmark_files(payload)
    # Postmark passes From and Subject as fields of their own, not among Headers: automail reads both. A payload
    # with FromFull and no From string (Postmark's own samples have them) gets its From from FromFull.
    mail.headers = pairs if "from" in headers else [*pairs, ("From", from_value)]
    _fill_threading(mail, headers, _postmark_report_ids(payload))
    return mail


def _postmark_raw(payload: dict[str, Any]) -> InboundMail:
    """"Include raw email content" on, and the parsed bodies empty: the mail is read from RawEmail, like the raw
    endpoint, so its own charsets, headers and attachments are kept; Postmark's recipient fields still win."""
    to_full = _list(payload.get("ToFull"))
    recipient = first_address(
        _str(payload.get("OriginalRecipient")), *(_str(t.get("Email")) for t in to_full if isinstance(t, dict)),
    )  # fmt: skip
    mail = parse_rfc822(_str(payload.get("RawEmail")).encode("utf-8", "replace"), "postmark", recipient)
    if not mail.sender_email:
        full = _dict(payload.get("FromFull"))
        if "@" in _str(full.get("Email")):
            mail.sender_email, mail.sender_name = _str(full.get("Email")), _str(full.get("Name")) or None
    mail.notes.append("read from RawEmail")
    return mail


def _postmark_files(payload: dict[str, Any]) -> list[MailFile]:
    """Attachments [{Name, ContentType, Content: base64, ContentLength}]: an entry whose content does not decode
    is counted but not kept (it cannot be served as what it claims to be)."""
    files: list[MailFile] = []
    for attachment in _list(payload.get("Attachments")):
        if not isinstance(attachment, dict):
            continue
        try:
            data = base64.b64decode(_str(attachment.get("Content")), validate=False)
        except (ValueError, binascii.Error):
            continue
        name, _notes = decode_header_value(_str(attachment.get("Name")))
        files.append(MailFile(name, _str(attachment.get("ContentType")), data))
    return files


def _sendgrid_files(form: Form) -> list[MailFile]:
    """The `attachmentN` file parts, named and typed as `attachment-info` says (SendGrid's JSON is UTF-8, while a
    part's own filename may be in any charset)."""
    info = _json_object(form.text("attachment-info"))
    files: list[MailFile] = []
    for upload in form.uploads:
        described = _dict(info.get(upload.field))
        name = _str(described.get("filename")) or _str(described.get("name"))
        files.append(_file(upload, name, _str(described.get("type"))))
    return files


def _file(upload: FormFile, name: str = "", content_type: str = "") -> MailFile:
    return MailFile(name or upload.filename, content_type or upload.content_type, upload.data)


def _postmark_report_ids(payload: dict[str, Any]) -> list[str]:
    """A bounce's returned mail arrives among Attachments ({Name, ContentType, Content: base64})."""
    found: list[str] = []
    for attachment in _list(payload.get("Attachments")):
        if not isinstance(attachment, dict):
            continue
        if _str(attachment.get("ContentType")).split(";")[0].lower() not in ("message/rfc822", "text/rfc822-headers"):
            continue
        try:
            content = base64.b64decode(_str(attachment.get("Content"))[: 2 * REPORT_SCAN], validate=False)
        except (ValueError, binascii.Error):
            continue
        original = original_message_id(content)
        if original:
            found.append(original)
    return found


def _fill_threading(mail: InboundMail, headers: dict[str, str], report_ids: list[str]) -> None:
    """In-Reply-To, References and Content-Type from the provider's headers (lower-cased names)."""
    mail.in_reply_to = raw_header(headers.get("in-reply-to")) or None
    mail.references = raw_header(headers.get("references")) or None
    mail.content_type = raw_header(headers.get("content-type")) or None
    mail.report_ids += report_ids


def _fill_from_headers(mail: InboundMail, from_value: str | None, subject: str | None) -> None:
    """From and Subject as the provider passed them; still RFC 2047-decoded, in case they arrive encoded."""
    mail.sender_name, mail.sender_email, notes = parse_address(from_value)
    text, subject_notes = decode_header_value(subject)
    mail.subject = text or None
    mail.notes.extend(notes + subject_notes)


def _utf8(form: Form, name: str) -> str | None:
    data = form.get(name)
    return data.decode("utf-8", "replace").replace("\r\n", "\n") if data else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _count(declared: str, seen: int) -> int:
    """The provider's attachment count, or the file parts seen if more (Mailgun omits the count without files)."""
    return max(int(declared) if declared.isascii() and declared.isdigit() else 0, seen)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except (ValueError, RecursionError):
        return {}
    return _dict(value)


def _header_pairs(text: str) -> list[tuple[str, str]]:
    """Mailgun's message-headers ([[name, value], ...]) as pairs, in order."""
    try:
        pairs = json.loads(text) if text else []
    except (ValueError, RecursionError):
        return []
    return [
        (str(pair[0]), str(pair[1])) for pair in (pairs if isinstance(pairs, list) else [])
        if isinstance(pair, list) and len(pair) == 2
    ]  # fmt: skip


def _first_of_each(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Header pairs → {lower-cased name: value}, first occurrence wins."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        headers.setdefault(name.lower(), value)
    return headers
