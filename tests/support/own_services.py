"""A Redis or PostgreSQL server of a test's own, on a spare loopback port, for tests that stop and start one.

The machine's shared servers (Redis 6379, PostgreSQL 5432) are never stopped: other tests, other pytest workers
and other runs use them. A missing server binary skips locally and fails under CI=true (missing_service).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.migrate import upgrade
from tests.support.processes import free_port
from tests.support.services import missing_service, wait_for


class OwnRedis:
    """redis-server on a fixed spare port: stop() kills it, start() brings a fresh, empty one back on the same port
    (what clients see when a broker restarts without persistence)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.server = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        try:
            assert wait_for(client.ping, attempts=100, delay=0.1) is None, "own redis-server did not start"
        finally:
            client.close()

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait(timeout=10)


class OwnPostgres:
    """initdb/pg_ctl on a spare loopback port in a temporary folder; as root, the server runs as `postgres`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.datadir = Path(tempfile.mkdtemp(prefix="furiwake-pg-"))
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.datadir, "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_postgres, str(self.bindir / tool), *args], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip

    def init(self) -> None:
        self._run("initdb", "-D", str(self.datadir / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.datadir / "data"), "-o", options, "-l", str(self.datadir / "log"),
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as in a crash or a restart for an upgrade."""
        self._run("pg_ctl", "-D", str(self.datadir / "data"), "-m", "fast", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        subprocess.run([*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-m",
                        "immediate", "stop"], timeout=60, capture_output=True)  # fmt: skip
        shutil.rmtree(self.datadir, ignore_errors=True)


def own_redis_server() -> Iterator[OwnRedis]:
    """The body of an `own_redis` fixture: a started OwnRedis, killed afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server is not installed, so no test can stop a Redis of its own")
        return
    server = OwnRedis(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def own_postgres_server() -> Iterator[OwnPostgres]:
    """The body of an `own_postgres` fixture: a started, migrated OwnPostgres, removed afterwards."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bindirs or (os.geteuid() == 0 and shutil.which("runuser") is None):
        missing_service("no PostgreSQL server binaries to start one of the test's own")
        return
    server = OwnPostgres(Path(bindirs[-1]))
    try:
        server.init()
        server.start()
        upgrade(server.url)
        yield server
    finally:
        server.remove()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    yield from own_redis_server()


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    yield from own_postgres_server()
