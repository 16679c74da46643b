"""Shared fixtures: real SQLite, PostgreSQL and Redis, as the brief asks; no mocks of components that run here.

A service that is not reachable skips its tests with a reason; under CI=true it fails them instead.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.config import Settings

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Each test takes one of Redis's databases 1-15 at random (0 is left alone): two test runs on one machine (two
# developers, or CI beside a session) would otherwise consume each other's classify messages.
REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis://127.0.0.1:6379")  # no database number
SHARED = Path(__file__).resolve().parents[2] / "shared"


def missing_service(reason: str) -> None:
    """Skip locally, fail in CI: a missing service in CI is a broken machine, never a pass."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def _wait_for(check: Callable[[], object], attempts: int = 10, delay: float = 0.3) -> Exception | None:
    last: Exception | None = None
    for _ in range(attempts):
        try:
            check()
            return None
        except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
            last = exc
            time.sleep(delay)
    return last


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from core.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'furiwake.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL, or skip/fail."""
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    error = _wait_for(ping)
    engine.dispose()
    if error is not None:
        missing_service(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {error}")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def empty_postgres_url(postgres_server: str) -> Iterator[str]:
    """A brand-new empty database for one test, dropped afterwards."""
    import sqlalchemy as sa

    name = f"furiwake_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base, _, _ = postgres_server.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(empty_postgres_url: str) -> str:
    from core.migrate import upgrade

    upgrade(empty_postgres_url)
    return empty_postgres_url


@pytest.fixture
def redis_url() -> str:
    """A Redis database emptied for the test."""
    import random

    import redis

    url = f"{REDIS_SERVER.rstrip('/')}/{random.randint(1, 15)}"
    client = redis.Redis.from_url(url)
    error = _wait_for(client.ping)
    if error is not None:
        missing_service(f"Redis not reachable at {url}: {error}")
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings rooted in a temporary home; keyword arguments override fields."""

    def build(**overrides: object) -> Settings:
        env = {"FURIWAKE_HOME": str(tmp_path), "SECRET_KEY": "test-secret"}
        return Settings.from_env(env, testing=True, **overrides)

    return build


CORPUS = Path(__file__).resolve().parents[1] / "data" / "tickets.tsv"


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small but real model trained once per test session on the bundled corpus (a few epochs)."""
    from training.datasets import load
    from training.train import TrainOptions, train

    model_dir = tmp_path_factory.mktemp("models")
    train(load(CORPUS), model_dir, TrainOptions(epochs=4, patience=1), progress=None)
    return model_dir
