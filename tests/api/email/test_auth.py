"""Basic auth on SendGrid, Postmark and raw: wrong or missing credentials → 401 and nothing stored; credentials
not configured → 503 (every provider retries it) rather than mail accepted from anyone."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.support.api import assert_problem, count_tickets, queued_ticket_ids
from tests.support.backends import both_backends
from tests.support.email_webhooks import PASSWORD, SENDGRID_FORM, USER, basic_auth, fixture_bytes, inbound_log

ENDPOINTS = [
    ("/webhooks/email/sendgrid", "sendgrid_parsed.form", SENDGRID_FORM),
    ("/webhooks/email/postmark", "postmark_inbound.json", "application/json"),
    ("/webhooks/email/raw", "iso2022jp_reply.eml", "message/rfc822"),
]
CREDENTIALS = [
    ("missing", {}),
    ("wrong password", basic_auth(USER, "guess")),
    ("wrong user", basic_auth("admin", PASSWORD)),
    ("password prefix", basic_auth(USER, PASSWORD[:-1])),
    ("bearer instead of basic", {"Authorization": "Bearer " + PASSWORD}),
    ("garbage", {"Authorization": "Basic !!!"}),
]


def post(client, url: str, fixture: str, content_type: str, headers: dict[str, str]):
    return client.post(url, data=fixture_bytes(fixture), content_type=content_type, headers=headers)


@both_backends
@pytest.mark.parametrize(("url", "fixture", "content_type"), ENDPOINTS, ids=[e[0].rsplit("/", 1)[1] for e in ENDPOINTS])
@pytest.mark.parametrize(("case", "headers"), CREDENTIALS, ids=[c[0] for c in CREDENTIALS])
def test_bad_credentials_get_401_and_store_nothing(
    email_app: Flask, email_client, broker, url, fixture, content_type, case, headers
) -> None:
    response = post(email_client, url, fixture, content_type, headers)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert count_tickets(email_app) == 0 and inbound_log(email_app) == [] and queued_ticket_ids(broker) == []


@pytest.mark.parametrize(("url", "fixture", "content_type"), ENDPOINTS, ids=[e[0].rsplit("/", 1)[1] for e in ENDPOINTS])
def test_right_credentials_pass(email_app: Flask, email_client, url, fixture, content_type) -> None:
    assert post(email_client, url, fixture, content_type, basic_auth()).status_code == 200


@pytest.mark.parametrize("configured", [{}, {"email_webhook_user": USER}, {"email_webhook_password": PASSWORD}])
@pytest.mark.parametrize(("url", "fixture", "content_type"), ENDPOINTS, ids=[e[0].rsplit("/", 1)[1] for e in ENDPOINTS])
def test_unconfigured_credentials_refuse_all_mail(make_app, url, fixture, content_type, configured) -> None:
    app = make_app(**configured)
    for headers in ({}, basic_auth(), basic_auth("", "")):
        response = post(app.test_client(), url, fixture, content_type, headers)
        problem = assert_problem(response, 503)
        assert "EMAIL_WEBHOOK_USER" in problem["detail"] and response.headers["Retry-After"]
    assert count_tickets(app) == 0 and inbound_log(app) == []


def test_settings_read_the_variables_and_hide_secrets() -> None:
    from core.config import Settings

    settings = Settings.from_env({"EMAIL_WEBHOOK_USER": " hook ", "EMAIL_WEBHOOK_PASSWORD": "pw",
                                  "MAILGUN_SIGNING_KEY": "key-1"})  # fmt: skip
    assert (settings.email_webhook_user, settings.email_webhook_password, settings.mailgun_signing_key) == (
        "hook", "pw", "key-1")  # fmt: skip
    assert "pw" not in repr(settings) and "key-1" not in repr(settings)


def test_webhooks_need_no_csrf_token(email_app: Flask) -> None:
    """The agents' pages check a CSRF token on every POST outside /api/; a webhook proves itself by credentials."""
    client = email_app.test_client()
    assert post(client, "/webhooks/email/raw", "euc_jp.eml", "message/rfc822", basic_auth()).status_code == 200
