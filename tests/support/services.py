"""The PostgreSQL and Redis servers the tests use for real, and what happens when one is not there.

A service that is not reachable skips its tests with a reason; under CI=true it fails them instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis://127.0.0.1:6379")  # no database number
# Nothing listens here: a broker outage, without stopping the real Redis other tests use.
DEAD_BROKER_URL = "redis://127.0.0.1:6390/0"
# Database 0 is left to whoever else uses the server; 1-15 go to pytest processes, one each (claim_redis_database).
REDIS_DATABASES = range(1, 16)


def missing_service(reason: str) -> None:
    """Skip locally, fail in CI: a missing service in CI is a broken machine, never a pass."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def wait_for(check: Callable[[], object], attempts: int = 10, delay: float = 0.3) -> Exception | None:
    """None once `check` runs without raising, else the last error after `attempts` tries."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            check()
            return None
        except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
            last = exc
            time.sleep(delay)
    return last


def worker_index(worker_id: str) -> int:
    """0 for a plain run ("master") and for xdist's gw0, N for gwN."""
    return 0 if worker_id == "master" else int(worker_id.removeprefix("gw"))


def claim_redis_database(server: str, worker_id: str) -> tuple[int, IO[str]]:
    """A Redis database (1-15) for this pytest process alone, and the open lock file that holds it.

    Every test of a process uses its one database, emptied at the start of each test. The claim is an exclusive
    lock on a file per (server, database) in the machine's temporary directory, held until the process ends (the
    kernel drops it even after a crash): two xdist workers, or two runs on one machine (two developers, CI beside
    a session), never flush or consume each other's classify messages. Worker gwN tries database N+1 first, so an
    unshared run is deterministic; when all fifteen are held, it waits for that one.
    """
    tag = hashlib.sha1(server.encode()).hexdigest()[:12]
    preferred = worker_index(worker_id) % len(REDIS_DATABASES)
    order = [*REDIS_DATABASES[preferred:], *REDIS_DATABASES[:preferred]]
    for database in order:
        handle = (Path(tempfile.gettempdir()) / f"furiwake-tests-redis-{tag}-{database}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return database, handle
    handle = (Path(tempfile.gettempdir()) / f"furiwake-tests-redis-{tag}-{order[0]}.lock").open("w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return order[0], handle
