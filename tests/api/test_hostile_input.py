"""Hostile and broken input at every door: the JSON API, the web form, the e-mail webhooks, the agents' endpoints.

Each either gets a clear 4xx (problem+json under /api/ and /webhooks/, the error page or the form again for a
browser) and stores nothing, or, when it is a legitimate ticket that merely looks odd (right-to-left, zero-width,
SQL-like, markup, `javascript:` links), is stored exactly once, verbatim, and queued like any other. Encoding and
NUL cases run on PostgreSQL as well, which refuses NUL in text: a 4xx there, never a 500.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.text import prepare, ticket_text
from tests.support.agents import csrf_token, make_agent
from tests.support.api import assert_problem, count_tickets, queued_ticket_ids, stored_tickets
from tests.support.backends import both_backends
from tests.support.email_webhooks import (
    MAILGUN_KEY,
    PASSWORD,
    USER,
    basic_auth,
    fixture_bytes,
    fixture_json,
    mailgun_sign,
    post_raw,
)

TEN_MB = 10 * 1024 * 1024
# A fixed id in test parameters: xdist's workers must collect the same ids.
UNKNOWN_TICKET = "00000000-0000-4000-8000-000000000000"

# Odd but legitimate: each must come back byte for byte.
ODD_TEXTS = {
    "rtl": "مرحبا، لا أستطيع تسجيل الدخول \u202eTXT.EXE\u202c שלום",
    "zero-width": "パス\u200bワード\u200dを\ufeff忘れました\u200c\u2060",
    "sql": "'; DROP TABLE tickets; -- 1' OR '1'='1\" UNION SELECT * FROM agents /*",
    "markup": "<script>alert(1)</script><img src=x onerror=alert(1)> javascript:alert(1)",
    "one long word": "請" * 20_000,  # the longest body MAX_BODY_CHARS allows, as one word
}


class CountingStream(io.RawIOBase):
    """A request body of `size` bytes that counts how much of it the server reads (seekable only because the
    test client measures its length up front)."""

    def __init__(self, size: int) -> None:
        self.size, self.position, self.read_bytes = size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence] + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:  # noqa: ANN001
        n = max(0, min(len(buffer), self.size - self.position))
        buffer[:n] = b"x" * n
        self.position += n
        self.read_bytes += n
        return n


def _bearer(app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_agent(app).token}"}


def _form(client: FlaskClient, **fields: str) -> dict[str, str]:
    return {"csrf_token": csrf_token(client, "/"), "lang": "en", **fields}


# --- too large ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("door", ["api", "form", "agent action"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_ten_megabytes_are_refused_with_413_before_they_are_read(app: Flask, client, door: str, declared: bool) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    headers = _bearer(app) if door == "agent action" else {}
    url, content_type = {
        "api": ("/api/v1/tickets", "application/json"),
        "form": ("/?lang=en", "application/x-www-form-urlencoded"),
        "agent action": (f"/api/v1/tickets/{uuid.uuid4()}/route", "application/json"),
    }[door]
    body = CountingStream(TEN_MB)
    if not declared:  # chunked: no length up front, the server reads until the limit (gunicorn marks it terminated)
        headers = {**headers, "Transfer-Encoding": "chunked"}
    response = client.post(url, input_stream=body, content_type=content_type, headers=headers,
                           environ_overrides={"wsgi.input_terminated": not declared})  # fmt: skip
    assert response.status_code == 413
    if door == "form":
        assert response.mimetype == "text/html" and "Something went wrong" in response.get_data(as_text=True)
    else:
        assert_problem(response, 413)
    assert body.read_bytes == 0 if declared else body.read_bytes <= limit + 65536
    assert count_tickets(app) == 0


# --- broken encodings and NUL ---------------------------------------------------------------------------------


@both_backends
def test_invalid_utf8_in_the_api_is_a_400(app: Flask, client) -> None:
    raw = b'{"body": "\xff\xfe \xe3\x81"}'
    problem = assert_problem(client.post("/api/v1/tickets", data=raw, content_type="application/json"), 400)
    assert problem["type"] == "urn:furiwake:problem:invalid-encoding"
    assert count_tickets(app) == 0


@both_backends
@pytest.mark.parametrize("bad", ["a\u0000b", "a\ud800b"], ids=["NUL", "lone surrogate"])
def test_nul_or_a_lone_surrogate_in_the_fields_is_a_422_naming_each(app: Flask, client, bad: str) -> None:
    fields = json.dumps({"body": bad, "subject": bad, "customer_name": bad})  # ASCII escapes: \u0000, \ud800
    problem = assert_problem(client.post("/api/v1/tickets", data=fields, content_type="application/json"), 422)
    assert set(problem["errors"]) == {"body", "subject", "customer_name"}
    assert count_tickets(app) == 0


@both_backends
def test_a_raw_nul_byte_in_json_is_invalid_json(app: Flask, client) -> None:
    problem = assert_problem(client.post("/api/v1/tickets", data=b'{"body": "a\x00b"}',
                                         content_type="application/json"), 400)  # fmt: skip
    assert problem["type"] == "urn:furiwake:problem:invalid-json"
    assert count_tickets(app) == 0


@both_backends
@pytest.mark.parametrize(
    "encoded",
    ["body=%FF%FE%E3%81", "body=a%00b", "body=ok&subject=%C0%AF"],
    ids=["invalid UTF-8", "NUL", "overlong UTF-8 in the subject"],
)
def test_broken_form_input_shows_the_form_again_with_a_400(app: Flask, client, encoded: str) -> None:
    token = urllib.parse.quote(csrf_token(client, "/"))
    response = client.post("/?lang=en", data=f"csrf_token={token}&{encoded}",
                           content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "characters we cannot accept" in response.get_data(as_text=True)
    assert count_tickets(app) == 0


def test_undecodable_form_bytes_are_a_400(app: Flask, client) -> None:
    token = urllib.parse.quote(csrf_token(client, "/"))
    raw = f"csrf_token={token}&body=".encode() + b"\xff\xfe"
    response = client.post("/?lang=en", data=raw, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert count_tickets(app) == 0


@both_backends
def test_nul_in_a_query_parameter_is_a_400(app: Flask, client) -> None:
    bearer = _bearer(app)
    assert_problem(client.get("/api/v1/tickets?status=%00", headers=bearer), 400, "status")
    assert_problem(client.get("/api/v1/tickets?cursor=%00", headers=bearer), 400, "cursor")


# --- odd but legitimate ---------------------------------------------------------------------------------------


@both_backends
@pytest.mark.parametrize("kind", list(ODD_TEXTS))
def test_odd_text_through_the_api_is_stored_once_verbatim_and_queued(app: Flask, client, broker, kind: str) -> None:
    text = ODD_TEXTS[kind]
    fields = {"body": text, "subject": text[:500], "customer_name": text[:200]}
    headers = {"Idempotency-Key": "odd-1"}
    first = client.post("/api/v1/tickets", json=fields, headers=headers)
    again = client.post("/api/v1/tickets", json=fields, headers=headers)  # a client's retry
    assert (first.status_code, again.status_code) == (202, 200)
    [ticket] = stored_tickets(app)
    assert (ticket.body, ticket.subject, ticket.customer_name) == (text, text[:500], text[:200])
    assert queued_ticket_ids(broker) == [str(ticket.id)]
    full = client.get(first.headers["Location"], headers=_bearer(app))
    assert full.get_json()["body"] == text and json.loads(full.get_data())["subject"] == text[:500]
    # What the worker does with it before the model: cleaned and tokenised like any other text.
    assert prepare(ticket_text(ticket.subject, ticket.body)) is not None


@both_backends
@pytest.mark.parametrize("kind", ["rtl", "zero-width", "sql", "markup"])
def test_odd_text_through_the_form_is_stored_once_verbatim(app: Flask, client, broker, kind: str) -> None:
    text = ODD_TEXTS[kind]
    response = client.post("/", data=_form(client, subject=text, body=text))
    assert response.status_code == 303
    [ticket] = stored_tickets(app)
    assert (ticket.body, ticket.subject, ticket.channel) == (text, text, "web")
    assert queued_ticket_ids(broker) == [str(ticket.id)]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert text not in page and "alert(" not in page  # the public page shows none of the customer's text


def test_a_body_over_the_limit_is_a_422_in_the_api_and_a_400_in_the_form(app: Flask, client) -> None:
    word = "x" * 100_000
    assert_problem(client.post("/api/v1/tickets", json={"body": word}), 422, "body")
    response = client.post("/?lang=en", data=_form(client, body=word))
    assert response.status_code == 400 and "at most 20,000 characters" in response.get_data(as_text=True)
    assert count_tickets(app) == 0


# --- e-mail webhooks: forged and replayed ---------------------------------------------------------------------


@pytest.fixture
def email_app(make_app) -> Flask:  # noqa: ANN001
    return make_app(email_webhook_user=USER, email_webhook_password=PASSWORD, mailgun_signing_key=MAILGUN_KEY)


@pytest.mark.parametrize("endpoint", ["raw", "postmark", "sendgrid"])
def test_a_chunked_webhook_body_past_its_limit_is_a_413_not_a_cut_mail(email_app: Flask, endpoint: str) -> None:
    """A mail sent without a Content-Length is read only up to the webhooks' limit: one that fills it is refused
    (the provider is told), never stored cut short."""
    from api.email.views import MAX_REQUEST_BYTES

    content_type = {"raw": "message/rfc822", "postmark": "application/json",
                    "sendgrid": "multipart/form-data; boundary=xyz"}[endpoint]  # fmt: skip
    body = CountingStream(MAX_REQUEST_BYTES + TEN_MB)
    response = email_app.test_client().post(
        f"/webhooks/email/{endpoint}", input_stream=body, content_type=content_type,
        headers={**basic_auth(), "Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True},
    )  # fmt: skip
    assert_problem(response, 413)
    assert body.read_bytes <= MAX_REQUEST_BYTES + 65536
    assert count_tickets(email_app) == 0


@pytest.mark.parametrize("credentials", [("inbound", "wrong"), ("someone", PASSWORD), None])
def test_forged_basic_credentials_are_a_401_and_store_nothing(email_app: Flask, credentials) -> None:  # noqa: ANN001
    client = email_app.test_client()
    headers = basic_auth(*credentials) if credentials else {}
    response = post_raw(client, "iso2022jp_reply.eml", headers=headers)
    assert_problem(response, 401)
    assert "Basic" in response.headers["WWW-Authenticate"]
    assert count_tickets(email_app) == 0


@both_backends
def test_forged_mailgun_signature_is_refused_and_stores_nothing(email_app: Flask) -> None:
    client = email_app.test_client()
    forged = mailgun_sign(fixture_json("mailgun_forward.json"), key="key-not-the-signing-key")
    tampered = {**mailgun_sign(fixture_json("mailgun_forward.json")), "timestamp": "1"}
    for form in (forged, tampered):
        # 406: the status that stops Mailgun's retries (api/email/auth.py), for a request that is not Mailgun's.
        assert_problem(client.post("/webhooks/email/mailgun", data=form), 406)
    assert count_tickets(email_app) == 0


@both_backends
def test_replayed_webhooks_store_one_ticket(email_app: Flask) -> None:
    client = email_app.test_client()
    signed = mailgun_sign(fixture_json("mailgun_forward.json"))
    assert client.post("/webhooks/email/mailgun", data=signed).status_code == 200
    assert_problem(client.post("/webhooks/email/mailgun", data=signed), 406)  # the same signed request again
    raw = fixture_bytes("iso2022jp_reply.eml")
    first, again = post_raw(client, raw), post_raw(client, raw)
    assert (first.get_json()["duplicate"], again.get_json()) == (False, {"id": first.get_json()["id"],
                                                                          "duplicate": True})  # fmt: skip
    assert count_tickets(email_app) == 2


# --- forms without CSRF token, agents' doors without sign-in or token -----------------------------------------


@pytest.mark.parametrize(
    "url", ["/", "/agent/login", f"/agent/tickets/{UNKNOWN_TICKET}/route", "/agent/logout", "/agent/models/retrain"]
)
def test_a_form_post_without_csrf_token_is_a_400_page(app: Flask, client, url: str) -> None:
    response = client.post(url, data={"body": "質問", "email": "hana@example.jp", "route": "Payment"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "Traceback" not in response.get_data(as_text=True)
    assert count_tickets(app) == 0


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", "/api/v1/tickets"), ("post", "/api/v1/tickets/{id}/route"), ("post", "/api/v1/tickets/{id}/resolve")],
)
@pytest.mark.parametrize("authorization", [None, "Bearer forged-token", "Basic aW5ib3VuZDpz"])
def test_agents_api_without_a_valid_token_is_a_401(app: Flask, client, method: str, url: str, authorization) -> None:  # noqa: ANN001
    created = client.post("/api/v1/tickets", json={"body": "質問"}).get_json()
    headers = {"Authorization": authorization} if authorization else {}
    response = getattr(client, method)(url.format(id=created["id"]), json={"route": "Payment"}, headers=headers)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    [ticket] = stored_tickets(app)
    assert (ticket.status, ticket.route) == ("queued", None)  # nothing changed


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", "/agent/"), ("get", "/agent/queue"), ("get", "/agent/tickets/{id}"), ("get", "/agent/models"),
     ("post", "/agent/tickets/{id}/resolve"), ("post", "/agent/models/retrain")],
)  # fmt: skip
def test_agents_pages_without_sign_in_redirect_to_it(app: Flask, client, method: str, url: str) -> None:
    created = client.post("/api/v1/tickets", json={"body": "質問"}).get_json()
    data = {"csrf_token": csrf_token(client, "/")} if method == "post" else None  # a valid form, no agent
    response = getattr(client, method)(url.format(id=created["id"]), data=data)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/agent/login?next=")
    assert "質問" not in response.get_data(as_text=True)
    [ticket] = stored_tickets(app)
    assert ticket.status == "queued"
