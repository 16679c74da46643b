"""Liveness touches nothing; readiness asks the database and the broker, quickly, and says which one failed."""

from __future__ import annotations

import time

from tests.support.api import DEAD_BROKER_URL, assert_problem
from tests.support.backends import both_backends

DEAD_DATABASE_URL = "postgresql://postgres@127.0.0.1:5499/nothing"


def test_healthz_needs_neither_database_nor_broker(make_app) -> None:
    client = make_app(database_url=DEAD_DATABASE_URL, broker_url=DEAD_BROKER_URL).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


@both_backends
def test_readyz_is_200_when_database_and_broker_answer(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_is_503_naming_the_broker(make_app) -> None:
    client = make_app(broker_url=DEAD_BROKER_URL).test_client()
    started = time.monotonic()
    problem = assert_problem(client.get("/readyz"), 503)
    assert time.monotonic() - started < 5
    assert problem["checks"] == {"database": "ok", "broker": "unavailable"}
    assert "broker" in problem["detail"]


def test_readyz_is_503_naming_the_database(make_app) -> None:
    client = make_app(database_url=DEAD_DATABASE_URL).test_client()
    problem = assert_problem(client.get("/readyz"), 503)
    assert problem["checks"] == {"database": "unavailable", "broker": "ok"}
    assert "database" in problem["detail"]
