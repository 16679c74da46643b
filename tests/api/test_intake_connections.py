"""The connections intake keeps between requests: the broker's (core.runtime.Runtime.producer, one kept per thread
instead of one borrowed from Celery's pool for each publish) and the database's (core.db: a pooled PostgreSQL
connection is pinged only when something says it may be dead, not on every checkout)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
import redis
import sqlalchemy as sa
from flask import Flask

import core.db
from core.db import make_engine
from core.messaging import CLASSIFY_QUEUE
from tests.support.api import stored_tickets
from tests.support.own_services import OwnRedis


def _post(app: Flask, body: str) -> dict:
    response = app.test_client().post("/api/v1/tickets", json={"body": body})
    assert response.status_code == 202, response.get_data(as_text=True)
    return dict(response.get_json())


def _queued_ids(url: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(message)["headers"]["argsrepr"] for message in client.lrange(CLASSIFY_QUEUE, 0, -1)]
    finally:
        client.close()


def test_the_kept_producer_publishes_again_once_a_restarted_broker_is_back(
    make_app: Callable[..., Flask], own_redis: OwnRedis
) -> None:
    app = make_app(broker_url=own_redis.url)
    assert _post(app, "再起動の前")["status"] == "queued"

    own_redis.stop()
    assert _post(app, "停止中")["status"] == "received"  # stored; the sweep will send it
    own_redis.start()  # a fresh, empty server on the same port

    after = _post(app, "再起動の後")
    assert after["status"] == "queued"
    assert _queued_ids(own_redis.url) == [repr([after["id"]])]
    assert sorted(ticket.status for ticket in stored_tickets(app)) == ["queued", "queued", "received"]


def test_each_thread_publishes_with_a_producer_of_its_own(make_app: Callable[..., Flask]) -> None:
    import threading

    runtime = make_app().extensions["furiwake"]
    here = runtime.producer()
    assert runtime.producer() is here
    elsewhere: list[object] = []
    thread = threading.Thread(target=lambda: elsewhere.append(runtime.producer()))
    thread.start()
    thread.join()
    assert elsewhere and elsewhere[0] is not here


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    built = make_engine(postgres_url)
    yield built
    built.dispose()


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _wait_until_gone(admin: sa.Connection, pid: int) -> None:
    """pg_terminate_backend only signals the backend; it says goodbye to its client and exits a moment later."""
    deadline = time.monotonic() + 10
    while admin.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar():
        assert time.monotonic() < deadline, f"backend {pid} still there"
        time.sleep(0.01)


def _last_query(admin: sa.Connection, pid: int) -> str:
    return str(admin.execute(sa.text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar())


@pytest.mark.postgres
def test_a_pooled_connection_the_server_ended_is_replaced_before_use(engine: sa.Engine, postgres_url: str) -> None:
    pid = _backend_pid(engine)
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
            _wait_until_gone(connection, pid)
        # The pool's connection is dead but was used a moment ago: the server's goodbye on its socket gives it away.
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
            assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_a_pooled_connection_is_pinged_only_when_idle_for_long(
    engine: sa.Engine, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _backend_pid(engine)
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as watcher:
            with engine.connect() as connection:  # back a moment ago, nothing to read: used as it is
                assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() == pid
                assert _last_query(watcher, pid) == "SELECT pg_backend_pid()"
            monkeypatch.setattr(core.db, "PING_AFTER_IDLE_SECONDS", 0.0)
            with engine.connect() as connection:  # idle "too long": pinged first (psycopg's ping is an empty `;`)
                assert _last_query(watcher, pid) == ";"
                assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() == pid
    finally:
        admin.dispose()
