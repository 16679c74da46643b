"""The e-mail webhooks' test material: provider fixtures on disk, credentials, signed Mailgun forms, the inbound log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import secrets
import time
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr
from urllib.parse import quote

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from core.orm import InboundEmail, WebhookNonce
from tests.support.paths import ROOT

FIXTURES = ROOT / "tests" / "api" / "email" / "fixtures"
USER, PASSWORD = "inbound", "s3cret-パスワード"
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
SENDGRID_FORM = "multipart/form-data; boundary=xYzZY"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def basic_auth(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def mailgun_sign(fields: dict[str, str], key: str = MAILGUN_KEY, timestamp: int | None = None,
                 token: str | None = None) -> dict[str, str]:
    """The fields with a fresh Mailgun signature, as Mailgun's route forward computes it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {**fields, "timestamp": str(timestamp), "token": token, "signature": signature}


def inbound_log(app: Flask) -> list[InboundEmail]:
    with app.extensions["furiwake"].sessions() as session:
        return list(session.scalars(select(InboundEmail).order_by(InboundEmail.id)))


def nonces(app: Flask) -> list[str]:
    with app.extensions["furiwake"].sessions() as session:
        return list(session.scalars(select(WebhookNonce.token)))


def post_raw(client: FlaskClient, name_or_bytes: str | bytes, **kwargs) -> object:
    data = fixture_bytes(name_or_bytes) if isinstance(name_or_bytes, str) else name_or_bytes
    kwargs.setdefault("headers", basic_auth())
    return client.post("/webhooks/email/raw", data=data, content_type="message/rfc822", **kwargs)


# --- one mail, delivered through any webhook ----------------------------------------------------------------------
# The threading tests send the same mail through each provider in that provider's own payload shape (the fixtures'
# shapes above): raw MIME for the raw pipe, SendGrid "send raw" and Mailgun's MIME route; fields plus a header list
# for SendGrid parsed mode, Mailgun's route forward and Postmark's JSON.

PROVIDERS = ("raw", "sendgrid", "sendgrid_raw", "mailgun", "mailgun_mime", "postmark")
SUPPORT = "support@furiwake.example"


@dataclass(frozen=True)
class TestMail:
    sender: str
    subject: str
    body: str
    message_id: str
    name: str = "山田 太郎"
    in_reply_to: str | None = None
    references: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # more headers: Auto-Submitted, X-Failed-Recipients, ...
    returned: str | None = None  # a bounce: the header block of the mail of ours it returns
    action: str = "failed"  # a bounce's delivery status (RFC 3464): failed, or delayed for "still trying"
    recipient: str = SUPPORT
    files: tuple[tuple[str, str, bytes], ...] = ()  # attachments: (filename, content type, bytes)

    __test__ = False  # not a pytest test class, whatever its name

    def header_list(self) -> list[tuple[str, str]]:
        """The headers besides From, To and Subject, which every provider also passes as fields of their own."""
        pairs = [("Message-ID", self.message_id), ("Date", "Wed, 08 May 2024 12:00:00 +0900")]
        pairs += [(name, value) for name, value in (("In-Reply-To", self.in_reply_to),
                                                    ("References", self.references)) if value]  # fmt: skip
        return [*pairs, *self.headers, ("MIME-Version", "1.0"), ("Content-Type", self.content_type())]

    def content_type(self) -> str:
        if self.returned is not None:
            return f'multipart/report; report-type=delivery-status; boundary="{REPORT_BOUNDARY}"'
        if self.files:
            return f'multipart/mixed; boundary="{MIXED_BOUNDARY}"'
        return 'text/plain; charset="utf-8"'


REPORT_BOUNDARY = "report-4VxK2d0Zq1z9s"
MIXED_BOUNDARY = "mixed-8PwQ3r7Lk2"


def to_mime(mail: TestMail) -> bytes:
    """The mail as an MTA hands it over: encoded words in From and Subject, a base64 UTF-8 body; a bounce is a
    multipart/report (RFC 3464) with the human-readable part, the delivery status and the returned headers."""
    head = [
        ("From", formataddr((mail.name, mail.sender), charset="utf-8")),
        ("To", mail.recipient),
        ("Subject", Header(mail.subject, "utf-8").encode()),
        *mail.header_list(),
    ]
    lines = [f"{name}: {value}" for name, value in head]
    text = base64.encodebytes(mail.body.encode()).decode("ascii")
    if mail.returned is None and not mail.files:
        lines += ["Content-Transfer-Encoding: base64", "", text]
    elif mail.returned is None:  # multipart/mixed: the text, then each file named the RFC 2231 way (Thunderbird)
        lines += ["", f"--{MIXED_BOUNDARY}", "Content-Type: text/plain; charset=utf-8",
                  "Content-Transfer-Encoding: base64", "", text]  # fmt: skip
        for name, ctype, data in mail.files:
            lines += [f"--{MIXED_BOUNDARY}", f"Content-Type: {ctype}",
                      f"Content-Disposition: attachment; filename*=utf-8''{quote(name)}",
                      "Content-Transfer-Encoding: base64", "", base64.encodebytes(data).decode("ascii")]  # fmt: skip
        lines += [f"--{MIXED_BOUNDARY}--"]
    else:
        lines += ["", f"--{REPORT_BOUNDARY}", "Content-Type: text/plain; charset=utf-8",
                  "Content-Transfer-Encoding: base64", "", text,
                  f"--{REPORT_BOUNDARY}", "Content-Type: message/delivery-status", "",
                  "Reporting-MTA: dns; mx.furiwake.example", "",
                  "Final-Recipient: rfc822; taro@exampel.jp", f"Action: {mail.action}", "Status: 5.1.1",
                  "Diagnostic-Code: smtp; 550 5.1.1 <taro@exampel.jp>: Recipient address rejected", "",
                  f"--{REPORT_BOUNDARY}", "Content-Type: text/rfc822-headers", "", mail.returned.strip(), "",
                  f"--{REPORT_BOUNDARY}--"]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def deliver(client: FlaskClient, provider: str, mail: TestMail) -> TestResponse:
    """POST the mail to the provider's webhook, shaped as that provider sends it."""
    return _SENDERS[provider](client, mail)


def _raw(client: FlaskClient, mail: TestMail) -> TestResponse:
    return client.post("/webhooks/email/raw", data=to_mime(mail), content_type="message/rfc822", headers=basic_auth())


def _envelope(mail: TestMail) -> bytes:
    return json.dumps({"to": [mail.recipient], "from": mail.sender}).encode()


def _sendgrid_raw(client: FlaskClient, mail: TestMail) -> TestResponse:
    return _post_sendgrid(client, [
        _form_part("envelope", _envelope(mail)), _form_part("email", to_mime(mail)),
        _form_part("to", mail.recipient.encode()), _form_part("from", mail.sender.encode()),
        _form_part("subject", mail.subject.encode()), _form_part("charsets", b'{"subject":"UTF-8"}'),
    ])  # fmt: skip


def _sendgrid_parsed(client: FlaskClient, mail: TestMail) -> TestResponse:
    block = "".join(f"{name}: {value}\r\n" for name, value in mail.header_list())
    parts = [
        _form_part("headers", block.encode()), _form_part("envelope", _envelope(mail)),
        _form_part("from", f"{mail.name} <{mail.sender}>".encode()), _form_part("to", mail.recipient.encode()),
        _form_part("subject", mail.subject.encode()), _form_part("text", mail.body.encode()),
        _form_part("charsets", b'{"from":"UTF-8","to":"UTF-8","subject":"UTF-8","text":"UTF-8"}'),
    ]  # fmt: skip
    if mail.returned is not None:  # parsed mode hands the report's parts over as attachments
        returned = _form_part("attachment1", mail.returned.encode(), "returned.txt", "text/rfc822-headers")
        parts += [_form_part("attachments", b"1"), returned]
    elif mail.files:  # attachment-info names them; the parts' own filenames are plain ASCII stand-ins
        info = {f"attachment{i}": {"filename": name, "name": name, "type": ctype}
                for i, (name, ctype, _data) in enumerate(mail.files, 1)}  # fmt: skip
        parts += [_form_part("attachments", str(len(mail.files)).encode()),
                  _form_part("attachment-info", json.dumps(info, ensure_ascii=False).encode())]  # fmt: skip
        parts += [_form_part(f"attachment{i}", data, f"file{i}", ctype)
                  for i, (_name, ctype, data) in enumerate(mail.files, 1)]  # fmt: skip
    return _post_sendgrid(client, parts)


def _mailgun_mime(client: FlaskClient, mail: TestMail) -> TestResponse:
    fields = {"recipient": mail.recipient, "sender": mail.sender, "from": f"{mail.name} <{mail.sender}>",
              "subject": mail.subject, "body-mime": to_mime(mail).decode("ascii")}  # fmt: skip
    return client.post("/webhooks/email/mailgun/mime", data=mailgun_sign(fields))


def _mailgun(client: FlaskClient, mail: TestMail) -> TestResponse:
    headers = json.dumps([[name, value] for name, value in mail.header_list()], ensure_ascii=False)
    fields = {"recipient": mail.recipient, "sender": mail.sender, "from": f"{mail.name} <{mail.sender}>",
              "subject": mail.subject, "body-plain": mail.body, "message-headers": headers}  # fmt: skip
    if mail.returned is None and not mail.files:
        return client.post("/webhooks/email/mailgun", data=mailgun_sign(fields))
    if mail.returned is not None:
        files = [(io.BytesIO(mail.returned.encode()), "returned.txt", "text/rfc822-headers")]
    else:
        files = [(io.BytesIO(data), name, ctype) for name, ctype, data in mail.files]
    data = {**mailgun_sign({**fields, "attachment-count": str(len(files))}),
            **{f"attachment-{i}": file for i, file in enumerate(files, 1)}}  # fmt: skip
    return client.post("/webhooks/email/mailgun", data=data, content_type="multipart/form-data")


def _postmark(client: FlaskClient, mail: TestMail) -> TestResponse:
    attachments = [] if mail.returned is None else [{
        "Name": "returned.txt", "ContentType": "text/rfc822-headers", "ContentLength": len(mail.returned),
        "Content": base64.b64encode(mail.returned.encode()).decode(),
    }]  # fmt: skip
    attachments += [{"Name": name, "ContentType": ctype, "ContentLength": len(data),
                     "Content": base64.b64encode(data).decode()} for name, ctype, data in mail.files]  # fmt: skip
    payload = {
        "From": f"{mail.name} <{mail.sender}>", "FromFull": {"Email": mail.sender, "Name": mail.name},
        "To": mail.recipient, "ToFull": [{"Email": mail.recipient, "Name": ""}], "OriginalRecipient": mail.recipient,
        "Subject": mail.subject, "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b", "TextBody": mail.body,
        "Headers": [{"Name": name, "Value": value} for name, value in mail.header_list()], "Attachments": attachments,
    }  # fmt: skip
    # \u escapes rather than raw UTF-8: the same JSON to the parser, and it can carry a lone surrogate (hostile input).
    return client.post("/webhooks/email/postmark", data=json.dumps(payload).encode(),
                       content_type="application/json", headers=basic_auth())  # fmt: skip


_SENDERS = {"raw": _raw, "sendgrid": _sendgrid_parsed, "sendgrid_raw": _sendgrid_raw, "mailgun": _mailgun,
            "mailgun_mime": _mailgun_mime, "postmark": _postmark}  # fmt: skip


def _form_part(name: str, value: bytes, filename: str | None = None, content_type: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--xYzZY\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def _post_sendgrid(client: FlaskClient, parts: list[bytes]) -> TestResponse:
    body = b"".join(parts) + b"--xYzZY--\r\n"
    return client.post("/webhooks/email/sendgrid", data=body, content_type=SENDGRID_FORM, headers=basic_auth())
