"""A database that cannot be reached: every request that needs it answers 503 with Retry-After, never a 500.

The app's DATABASE_URL points at a loopback port nothing listens on (connection refused at once), the state of a
PostgreSQL that is stopped or restarting. JSON callers get problem+json, browsers the error page.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.problems import database_unreachable
from tests.support.agents import csrf_token
from tests.support.api import assert_problem
from tests.support.email_webhooks import PASSWORD, USER, basic_auth, fixture_bytes
from tests.support.processes import free_port

UNAVAILABLE = "urn:furiwake:problem:database-unavailable"


@pytest.fixture
def down_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/test",
        email_webhook_user=USER,
        email_webhook_password=PASSWORD,
    )


@pytest.fixture
def down_client(down_app: Flask) -> FlaskClient:
    return down_app.test_client()


def _assert_retry_problem(response) -> None:
    problem = assert_problem(response, 503)
    assert problem["type"] == UNAVAILABLE
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        ("post", "/api/v1/tickets", {"json": {"body": "ログインできません"}}),
        ("post", "/api/v1/tickets", {"json": {"body": "再送"}, "headers": {"Idempotency-Key": "k-503"}}),
        ("get", "/api/v1/tickets/7d5e1e0e-3c1a-4b7e-9a51-0c4a2f1f7e10", {}),
        ("get", "/api/v1/tickets", {"headers": {"Authorization": "Bearer some-agent-token"}}),
        ("post", "/webhooks/email/raw",
         {"data": fixture_bytes("euc_jp.eml"), "content_type": "message/rfc822", "headers": basic_auth()}),
    ],
    ids=["intake", "intake with key", "ticket", "agents' API", "e-mail webhook"],
)  # fmt: skip
def test_json_callers_get_503_with_retry_after(down_client: FlaskClient, caplog, method, url, kwargs) -> None:
    _assert_retry_problem(getattr(down_client, method)(url, **kwargs))
    assert "database unreachable" in caplog.text and "Traceback" not in caplog.text


def test_the_web_form_gets_an_error_page_with_retry_after(down_client: FlaskClient) -> None:
    response = down_client.post("/", data={"csrf_token": csrf_token(down_client, "/"), "body": "カードが使えません"})
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert int(response.headers["Retry-After"]) > 0
    assert "503" in response.get_data(as_text=True)


def test_ticket_page_and_agent_sign_in_get_an_error_page(down_client: FlaskClient) -> None:
    page = down_client.get("/tickets/7d5e1e0e-3c1a-4b7e-9a51-0c4a2f1f7e10")
    data = {"email": "hana@example.jp", "password": "x", "csrf_token": csrf_token(down_client, "/agent/login")}
    sign_in = down_client.post("/agent/login", data=data)
    for response in (page, sign_in):
        assert response.status_code == 503 and response.mimetype == "text/html"
        assert int(response.headers["Retry-After"]) > 0


def test_a_database_error_that_is_a_bug_stays_a_500(make_app: Callable[..., Flask], tmp_path) -> None:
    """An empty SQLite file (no tables): "no such table" is an OperationalError too, but not an outage."""
    app = make_app(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().post("/api/v1/tickets", json={"body": "質問"})
    assert_problem(response, 500)


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        (OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")), True),
        (OperationalError("SELECT", {}, sqlite3.OperationalError("unable to open database file")), True),
        (OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: tickets")), False),
        (IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")), False),
        (DBAPIError("SELECT", {}, Exception("server closed the connection"), connection_invalidated=True), True),
        (PoolTimeout("QueuePool limit of size 5 overflow 10 reached"), True),
    ],
    ids=["sqlite locked", "sqlite unopenable", "sqlite no table", "integrity", "invalidated", "pool exhausted"],
)
def test_which_database_errors_are_an_outage(error: Exception, unreachable: bool) -> None:
    """SQLite reports its busy timeout running out like a missing table (both OperationalError): only the first
    is an outage."""
    assert database_unreachable(error) is unreachable
