"""Fixtures app/client/runner (as in flaskr's tests), over a real database and a real Redis broker.

`database_url` is SQLite unless a test asks for both backends with @both_backends (indirect parametrisation).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select

from api import create_app
from core.config import Settings
from core.messaging import CLASSIFY_QUEUE
from core.orm import Ticket

# Nothing listens here: a broker outage, without stopping the real Redis other tests use.
DEAD_BROKER_URL = "redis://127.0.0.1:6390/0"

both_backends = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    backend = getattr(request, "param", "sqlite")
    return str(request.getfixturevalue(f"{backend}_url"))


@pytest.fixture
def make_app(
    make_settings: Callable[..., Settings], database_url: str, redis_url: str
) -> Iterator[Callable[..., Flask]]:
    """Build an app on the test database and broker; keyword arguments override settings."""
    apps: list[Flask] = []

    def build(**overrides: object) -> Flask:
        app = create_app(make_settings(**{"database_url": database_url, "broker_url": redis_url, **overrides}))
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["furiwake"].engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def queued_ticket_ids(broker: redis.Redis) -> list[str]:
    """The ticket ids of the classify messages waiting in Redis (kombu keeps a queue as a list of JSON envelopes)."""
    ids = []
    for raw in broker.lrange(CLASSIFY_QUEUE, 0, -1):
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        ids.append(args[0])
    return ids


def stored_tickets(app: Flask) -> list[Ticket]:
    with app.extensions["furiwake"].session_factory() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.created_at, Ticket.id)))


def count_tickets(app: Flask) -> int:
    with app.extensions["furiwake"].session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)


def assert_problem(response, status: int, field: str | None = None) -> dict:
    """An RFC 9457 problem with the given status; `field`, when given, must be named in `errors`."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json(force=True)
    assert problem["status"] == status
    assert problem["type"] and problem["title"] and problem["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    if field is not None:
        assert field in problem["errors"], problem
    return problem
