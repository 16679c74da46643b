"""A PostgreSQL of the test's own, stopped under a running app and started again: 503 while it is down, nothing
half-stored, and the app serves again once it is back (the pool replaces its dead connections itself).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from core.migrate import upgrade
from tests.support.agents import csrf_token
from tests.support.api import assert_problem, count_tickets
from tests.support.processes import free_port

pytestmark = pytest.mark.postgres


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
        self._run("pg_ctl", "-D", str(self.datadir / "data"), "-m", "fast", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        subprocess.run([*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-m",
                        "immediate", "stop"], timeout=60, capture_output=True)  # fmt: skip
        shutil.rmtree(self.datadir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bindirs or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("no PostgreSQL server binaries to start one of the test's own")
    server = OwnPostgres(Path(bindirs[-1]))
    try:
        server.init()
        server.start()
        upgrade(server.url)
        yield server
    finally:
        server.remove()


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
