"""A worker process's heartbeat row (core/heartbeats.py): written at once, refreshed, removed on a clean stop; a dead
process's row is forgotten by the next `furiwake run` on its host; a database that fails never raises into the
worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from core import heartbeats
from core.config import Settings
from core.orm import WorkerHeartbeat
from core.runtime import Runtime


def _runtime(tmp_path: Path, database_url: str) -> Runtime:
    return Runtime.build(Settings.from_env({"FURIWAKE_HOME": str(tmp_path), "DATABASE_URL": database_url}))


def _rows(runtime: Runtime) -> list[WorkerHeartbeat]:
    with runtime.sessions() as session:
        return list(session.query(WorkerHeartbeat).all())


def test_a_heartbeat_is_written_at_once_refreshed_and_removed_on_stop(tmp_path: Path, sqlite_url: str) -> None:
    runtime = _runtime(tmp_path, sqlite_url)
    version: list[str | None] = [None]
    beat = heartbeats.Heartbeat(runtime.unit_of_work, lambda: version[0], every_s=0.1)
    try:
        beat.start()
        [row] = _rows(runtime)
        assert (row.host, row.pid, row.model_version) == (*heartbeats.this_process(), None)
        first_seen = row.seen_at

        version[0] = "20261203-aaaa"  # a (re)load: the next beat says so
        deadline = time.monotonic() + 10
        while _rows(runtime)[0].model_version != "20261203-aaaa":
            assert time.monotonic() < deadline, "the heartbeat was not refreshed"
            time.sleep(0.05)
        assert _rows(runtime)[0].seen_at > first_seen
        with runtime.sessions() as session:
            assert heartbeats.live(session) == heartbeats.Serving(workers=1, serving=1, models=("20261203-aaaa",))
    finally:
        beat.stop()
    assert _rows(runtime) == []
    runtime.dispose()


def test_wake_beats_at_once_instead_of_at_the_next_interval(tmp_path: Path, sqlite_url: str) -> None:
    """A hot-swapped model (worker.current_model calls wake) shows in the row within moments, not BEAT_EVERY_S."""
    runtime = _runtime(tmp_path, sqlite_url)
    version = ["20261203-aaaa"]
    beat = heartbeats.Heartbeat(runtime.unit_of_work, lambda: version[0], every_s=3600)
    try:
        beat.start()
        assert _rows(runtime)[0].model_version == "20261203-aaaa"
        version[0] = "20261204-bbbb"
        beat.wake()
        deadline = time.monotonic() + 5
        while _rows(runtime)[0].model_version != "20261204-bbbb":
            assert time.monotonic() < deadline, "wake() did not beat"
            time.sleep(0.02)
    finally:
        beat.stop()
    assert _rows(runtime) == []
    runtime.dispose()


def test_a_failing_database_is_logged_not_raised(tmp_path: Path, caplog) -> None:
    runtime = _runtime(tmp_path, f"sqlite:///{tmp_path / 'not-migrated.db'}")  # no worker_heartbeats table
    beat = heartbeats.Heartbeat(runtime.unit_of_work, lambda: "v1")
    assert beat.beat_now() is False
    beat.stop()
    assert "worker heartbeat not written" in caplog.text and "worker heartbeat not removed" in caplog.text
    runtime.dispose()


def test_forget_dead_here_removes_only_this_hosts_dead_processes(tmp_path: Path, sqlite_url: str) -> None:
    runtime = _runtime(tmp_path, sqlite_url)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(gone.stdout)
    host = heartbeats.this_process()[0]
    with runtime.unit_of_work() as session:
        heartbeats.beat(session, host, dead_pid, "v1")
        heartbeats.beat(session, host, os.getpid(), "v1")
        heartbeats.beat(session, "another-machine", dead_pid, "v1")

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    with runtime.unit_of_work() as session:
        assert heartbeats.forget_dead_here(session, host, alive) == 1
    assert sorted((row.host, row.pid) for row in _rows(runtime)) == sorted(
        [(host, os.getpid()), ("another-machine", dead_pid)])
    runtime.dispose()
