"""Fixtures app/client/runner (as in flaskr's tests), over a real database and a real Redis broker.

The app's database is the root conftest's `database_url`: SQLite unless a test asks for both backends with
tests.support.backends.both_backends.
Every app here has a Redis broker, so every test that uses one is marked `redis` (through `redis_url`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from api import create_app
from core.config import Settings


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
