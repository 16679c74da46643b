"""Shared fixtures: real SQLite, PostgreSQL and Redis, as the brief asks; no mocks of components that run here.

A service that is not reachable skips its tests with a reason; under CI=true it fails them instead. Every test is
marked for what it needs, derived from its fixtures (tests/support/marks.py); `-m unit` needs none of them.
Helpers that test modules import live in tests/support/, never here.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.config import Settings
from tests.support.marks import mark_item, require_mark
from tests.support.paths import CORPUS
from tests.support.processes import Processes
from tests.support.services import POSTGRES_ADMIN_URL, REDIS_SERVER, claim_redis_database, missing_service, wait_for

# Fixtures for tests that stop a server of their own (own_redis, own_postgres).
pytest_plugins = ["tests.support.own_services"]


@pytest.hookimpl(tryfirst=True)  # before the -m deselection reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        mark_item(item)


def _worker_id() -> str:
    """xdist's worker id (gw0, gw1, …), "master" without xdist; read from the environment xdist sets, so these
    fixtures work under `-p no:xdist` too."""
    return os.environ.get("PYTEST_XDIST_WORKER", "master")


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

    error = wait_for(ping)
    engine.dispose()
    if error is not None:
        missing_service(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {error}")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def empty_postgres_url(request: pytest.FixtureRequest, postgres_server: str) -> Iterator[str]:
    """A brand-new empty database for one test, dropped afterwards (a random name: xdist workers never share one)."""
    import sqlalchemy as sa

    require_mark(request, "postgres")
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
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLite, unless the test is parametrised with tests.support.backends.both_backends (indirectly: the
    PostgreSQL parameter carries the `postgres` mark, since getfixturevalue hides the fixture from the closure)."""
    backend = getattr(request, "param", "sqlite")
    return str(request.getfixturevalue(f"{backend}_url"))


@pytest.fixture(scope="session")
def redis_database() -> Iterator[int]:
    """The Redis database this pytest process (this xdist worker) holds for the run, claimed when first needed."""
    database, claim = claim_redis_database(REDIS_SERVER, _worker_id())
    yield database
    claim.close()


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_database: int) -> str:
    """This process's Redis database (tests/support/services.py), emptied for the test."""
    import redis

    require_mark(request, "redis")
    url = f"{REDIS_SERVER.rstrip('/')}/{redis_database}"
    client = redis.Redis.from_url(url)
    error = wait_for(client.ping)
    if error is not None:
        missing_service(f"Redis not reachable at {url}: {error}")
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings rooted in a temporary home; keyword arguments override fields."""

    def build(**overrides: object) -> Settings:
        # Rate limits stay on, high enough for any test; tests/api/test_rate_limits.py sets low ones.
        env = {"FURIWAKE_HOME": str(tmp_path), "SECRET_KEY": "test-secret",
               "RATE_LIMIT_INTAKE": "10000/minute", "RATE_LIMIT_SIGNIN": "1000/minute"}
        return Settings.from_env(env, testing=True, **overrides)

    return build


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Processes]:
    """Real gunicorn, Celery and Redis processes a test starts (tests/support/processes.py), stopped afterwards."""
    require_mark(request, "e2e")
    procs = Processes(tmp_path)
    yield procs
    procs.stop()


def _train_into(model_dir: Path) -> None:
    """Every other row of the bundled corpus (each round's rows are shuffled, so every round, category and writer
    stays in): the tests need a real model that routes plain tickets right, not the shipped model's last point,
    and training it is the longest step of the in-process phase, on the path of every test that waits for it
    (69 s instead of 106 s on a 2-core AMD EPYC, 2026-12-05)."""
    from training.datasets import Dataset, load
    from training.train import TrainOptions, train

    train(Dataset(load(CORPUS).examples[::2]), model_dir, TrainOptions(epochs=4, patience=1), progress=None)


# `make test` names one directory for both of its pytest runs, so the e2e phase serves the model the in-process phase
# trained instead of training the same one again (~3 minutes on two cores); it is new for every `make test`.
SHARED_MODEL_ENV = "FURIWAKE_TEST_MODEL_CACHE"


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small but real model trained once per test run on the bundled corpus (a few epochs).

    Under xdist the workers share one: the first to get the lock trains it in the run's common temporary
    directory (or in $FURIWAKE_TEST_MODEL_CACHE, shared by `make test`'s two runs), the others wait and reuse it,
    instead of every worker training its own on the same cores.
    """
    if os.environ.get(SHARED_MODEL_ENV):
        run_dir = Path(os.environ[SHARED_MODEL_ENV])
    elif _worker_id() == "master":
        model_dir = tmp_path_factory.mktemp("models")
        _train_into(model_dir)
        return model_dir
    else:
        run_dir = tmp_path_factory.getbasetemp().parent  # shared by this run's workers, not by other runs
    model_dir, done = run_dir / "trained-model", run_dir / "trained-model.done"
    with (run_dir / "trained-model.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(model_dir, ignore_errors=True)  # what a worker that crashed mid-training left
            model_dir.mkdir()
            _train_into(model_dir)
            done.touch()
    return model_dir
