"""Liveness touches nothing; readiness asks the database and the broker, quickly, and says which one failed; it
reports the classify workers that serve a model, and makes "none" a 503 only when asked (`?workers=1`)."""

from __future__ import annotations

import time
from datetime import timedelta

from core import heartbeats
from core.orm import WorkerHeartbeat, utcnow
from tests.support.api import DEAD_BROKER_URL, assert_problem
from tests.support.backends import both_backends

NO_WORKERS = {"alive": 0, "serving": 0, "models": []}

DEAD_DATABASE_URL = "postgresql://postgres@127.0.0.1:5499/nothing"


def test_healthz_needs_neither_database_nor_broker(make_app) -> None:
    client = make_app(database_url=DEAD_DATABASE_URL, broker_url=DEAD_BROKER_URL).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


@both_backends
def test_readyz_is_200_when_database_and_broker_answer(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"},
                                   "workers": NO_WORKERS}


@both_backends
def test_readyz_reports_the_workers_that_serve_a_model_and_ignores_stale_ones(app) -> None:
    runtime = app.extensions["furiwake"]
    with runtime.unit_of_work() as session:
        heartbeats.beat(session, "host-a", 101, "20261203-aaaa")
        heartbeats.beat(session, "host-b", 202, "20261203-bbbb")
        heartbeats.beat(session, "host-b", 203, None)  # up, still loading its model
        session.add(WorkerHeartbeat(host="host-c", pid=303, model_version="20261201-old",
                                    seen_at=utcnow() - timedelta(seconds=heartbeats.STALE_AFTER_S + 5)))
    client = app.test_client()

    body = client.get("/readyz").get_json()
    assert body["workers"] == {"alive": 3, "serving": 2, "models": ["20261203-aaaa", "20261203-bbbb"]}
    assert client.get("/readyz?workers=1").status_code == 200

    with runtime.unit_of_work() as session:
        heartbeats.forget(session, "host-a", 101)
        heartbeats.forget(session, "host-b", 202)
    assert client.get("/readyz").get_json()["workers"] == {"alive": 1, "serving": 0, "models": []}


def test_readyz_stays_200_with_no_worker_but_is_503_when_asked_for_workers(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json()["workers"] == NO_WORKERS  # tickets wait, queued

    problem = assert_problem(client.get("/readyz?workers=1"), 503)
    assert problem["checks"] == {"database": "ok", "broker": "ok"} and problem["workers"] == NO_WORKERS
    assert "no worker serves a model" in problem["detail"]


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
