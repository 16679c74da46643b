"""Form posts (SendGrid, Mailgun) read as raw bytes per field.

Flask's request.form decodes every field as UTF-8 and caps text fields at 500 kB; SendGrid sends each field in the
mail's own charset (named in its `charsets` field) and HTML bodies can be larger. So the body is parsed here with
the stdlib MIME parser, which keeps each field's bytes as sent, tolerates non-UTF-8 part headers (a Shift_JIS
attachment name must not sink the mail), and hands each file part over with its field name, filename and type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value
from urllib.parse import parse_qsl

from flask import Request

from api.email.headers import part_filename, returned_message_id
from api.email.message import MailRejected
from api.parsing import read_body


@dataclass(frozen=True)
class FormFile:
    """A file part: SendGrid's `attachmentN`, Mailgun's `attachment-N`, with the name and type the part declares."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Form:
    fields: dict[str, bytes] = field(default_factory=dict)
    uploads: list[FormFile] = field(default_factory=list)  # file parts (attachments), in order
    report_ids: list[str] = field(default_factory=list)  # a returned mail's Message-ID (bounces attach it)

    @property
    def files(self) -> int:
        return len(self.uploads)

    def get(self, name: str) -> bytes | None:
        return self.fields.get(name)

    def text(self, name: str) -> str:
        """A field the provider sends as UTF-8 (Mailgun: everything; SendGrid: envelope, charsets, counts)."""
        return (self.fields.get(name) or b"").decode("utf-8", "replace").strip()


def read_form(request: Request) -> Form:
    """The posted form; MailRejected if the body is neither multipart/form-data nor URL-encoded."""
    body = read_body(request, cache=False)
    if request.mimetype == "application/x-www-form-urlencoded":
        # latin-1 maps every byte to one code point, so the percent-decoded bytes come back unchanged.
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
        form = Form()
        for name, value in pairs:
            form.fields.setdefault(name, value.encode("latin-1"))
        return form
    if request.mimetype != "multipart/form-data":
        raise MailRejected(f"expected form data, got {request.mimetype or 'no Content-Type'}")
    boundary = request.mimetype_params.get("boundary", "")
    if not boundary:
        raise MailRejected("multipart/form-data without a boundary")
    envelope = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\n\r\n'.encode("ascii", "replace")
    message = BytesParser(policy=compat32).parsebytes(envelope + body)
    parts = message.get_payload()
    if not message.is_multipart() or not isinstance(parts, list):
        raise MailRejected("malformed multipart/form-data")
    form = Form()
    for part in parts:
        if not isinstance(part, Message):
            continue
        param = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            form.uploads.append(_upload(part, collapse_rfc2231_value(param) if param is not None else ""))
            original = returned_message_id(part)
            if original:
                form.report_ids.append(original)
        elif param is not None:
            payload = part.get_payload(decode=True)
            name = collapse_rfc2231_value(param)
            form.fields.setdefault(name, payload if isinstance(payload, bytes) else b"")
    return form


def _upload(part: Message, name: str) -> FormFile:
    """A file part; its filename decoded like a header (RFC 2047 words, raw 8-bit bytes in any charset)."""
    payload = part.get_payload(decode=True)
    filename, _notes = part_filename(part)
    return FormFile(name, filename, part.get_content_type(), payload if isinstance(payload, bytes) else b"")
