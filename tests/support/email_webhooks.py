"""The e-mail webhooks' test material: provider fixtures on disk, credentials, signed Mailgun forms, the inbound log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

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
