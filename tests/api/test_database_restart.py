"""A PostgreSQL of the test's own, stopped under a running app and started again: 503 while it is down, nothing
half-stored, and the app serves again once it is back (the pool replaces its dead connections itself).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from tests.support.agents import csrf_token
from tests.support.api import assert_problem, count_tickets
from tests.support.own_services import OwnPostgres

pytestmark = pytest.mark.postgres


def test_postgres_stopped_mid_run_answers_503_then_recovers(
    make_app: Callable[..., Flask], own_postgres: OwnPostgres
) -> None:
    app = make_app(database_url=own_postgres.url)
    client = app.test_client()
    assert client.post("/api/v1/tickets", json={"body": "停止前"}).status_code == 202
    token = csrf_token(client, "/")

    own_postgres.stop()
    for _attempt in range(2):  # the pooled connection found dead, then a fresh connection refused
        refused = client.post("/api/v1/tickets", json={"body": "停止中"}, headers={"Idempotency-Key": "while-down"})
        assert_problem(refused, 503)
        assert int(refused.headers["Retry-After"]) > 0
    page = client.post("/", data={"csrf_token": token, "body": "停止中のフォーム"})
    assert page.status_code == 503 and page.mimetype == "text/html" and "Retry-After" in page.headers

    own_postgres.start()
    again = client.post("/api/v1/tickets", json={"body": "停止中"}, headers={"Idempotency-Key": "while-down"})
    assert again.status_code == 202
    assert count_tickets(app) == 2  # the one before, the retried one: nothing from the outage itself
