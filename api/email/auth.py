"""Who may post mail: HTTP basic auth (SendGrid, Postmark, raw MIME) or Mailgun's signature.

Both compare in constant time (hmac.compare_digest). Unconfigured credentials answer 503, never "let everyone
in": every provider retries a 5xx, so mail sent before the operator sets the variables is delivered afterwards
instead of being lost or accepted from anyone.

Mailgun signs timestamp + token with the account's webhook signing key. A signature older (or newer) than
five minutes, or a token already seen, is refused with 406, the status that stops Mailgun's retries: either
is a replay. Seen tokens live in webhook_nonces; a token whose timestamp was at most 5 minutes in the future
can be replayed for at most 10 minutes after it arrived, so rows older than 15 minutes are pruned.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import timedelta

from flask import Response, request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.email.formdata import Form
from api.problems import problem_response
from core.config import Settings
from core.orm import WebhookNonce, utcnow

MAX_SKEW_SECONDS = 300
NONCE_TTL = timedelta(minutes=15)
REALM = 'Basic realm="furiwake e-mail webhooks", charset="UTF-8"'
NOT_CONFIGURED = "urn:furiwake:problem:webhook-not-configured"
UNAUTHORIZED = "urn:furiwake:problem:webhook-unauthorized"
BAD_SIGNATURE = "urn:furiwake:problem:webhook-signature"

log = logging.getLogger(__name__)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def not_configured(*variables: str) -> Response:
    return problem_response(
        503,
        detail=f"E-mail webhooks are not configured: set {' and '.join(variables)}. Mail is refused until then.",
        type=NOT_CONFIGURED,
        headers=[("Retry-After", "600")],
    )


def check_basic_auth(settings: Settings) -> Response | None:
    """None when the request carries the configured user and password; otherwise the response to send."""
    user, password = settings.email_webhook_user, settings.email_webhook_password
    if not user or not password:
        return not_configured("EMAIL_WEBHOOK_USER", "EMAIL_WEBHOOK_PASSWORD")
    auth = request.authorization
    given_user = (auth.username or "") if auth is not None and auth.type == "basic" else ""
    given_password = (auth.password or "") if auth is not None and auth.type == "basic" else ""
    user_ok = _same(given_user, user)
    password_ok = _same(given_password, password)  # both compared, whatever the first gave
    if user_ok and password_ok:
        return None
    log.warning("e-mail webhook %s: refused, %s credentials", request.path, "wrong" if auth else "no")
    return problem_response(
        401,
        detail="This endpoint needs the e-mail webhook's HTTP basic credentials.",
        type=UNAUTHORIZED,
        headers=[("WWW-Authenticate", REALM)],
    )


def check_mailgun_signature(
    form: Form, settings: Settings, session_factory: sessionmaker[Session], now: float | None = None
) -> Response | None:
    """None when the signature is Mailgun's, fresh and not seen before (its token is then recorded)."""
    key = settings.mailgun_signing_key
    if not key:
        return not_configured("MAILGUN_SIGNING_KEY")
    timestamp, token, signature = form.text("timestamp"), form.text("token"), form.text("signature")
    if not (timestamp.isascii() and timestamp.isdigit() and token and signature):
        return _refuse("The request carries no Mailgun signature (timestamp, token, signature).")
    expected = hmac.new(key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256).hexdigest()
    if not _same(signature.lower(), expected):
        return _refuse("The Mailgun signature does not match.")
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_SKEW_SECONDS:
        return _refuse("The Mailgun signature is more than 5 minutes old (or ahead of this server's clock).")
    if len(token) > 200:
        return _refuse("The Mailgun token is too long.")
    try:
        with session_factory.begin() as session:
            session.execute(delete(WebhookNonce).where(WebhookNonce.seen_at < utcnow() - NONCE_TTL))
            session.add(WebhookNonce(token=token))
    except IntegrityError:
        return _refuse("This Mailgun token was already used: a replayed request.")
    return None


def forget_token(form: Form, session_factory: sessionmaker[Session]) -> None:
    """Let Mailgun's retry of a request we failed on (5xx) through: its token is no replay."""
    try:
        with session_factory.begin() as session:
            session.execute(delete(WebhookNonce).where(WebhookNonce.token == form.text("token")))
    except SQLAlchemyError:
        pass  # the database is what failed; the retry may be refused, the mail is then in Mailgun's logs


def _refuse(detail: str) -> Response:
    log.warning("Mailgun webhook refused: %s", detail)
    return problem_response(406, detail=detail, type=BAD_SIGNATURE)
