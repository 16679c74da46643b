"""The supervisor of `furiwake run` against real child processes: a killed child comes back after its back-off, one
that keeps crashing stops the router, and a stop asked for is no crash."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.supervisor import backoff, run, supervise
from core.config import ConfigError, Settings


def _child(pid_file: Path, then: str = "time.sleep(120)") -> list[str]:
    """A tiny child that appends its pid to pid_file each time it starts, then does `then`."""
    code = f"import os, sys, time\nwith open({str(pid_file)!r}, 'a') as f: f.write(f'{{os.getpid()}}\\n')\n{then}\n"
    return [sys.executable, "-c", code]


def _pids(pid_file: Path) -> list[int]:
    return [int(line) for line in pid_file.read_text().split()] if pid_file.exists() else []


def _wait_for(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class _Supervisor:
    """supervise() on a thread (signals stay with pytest's main thread); stop() is what Ctrl-C would do."""

    def __init__(self, argvs: dict[str, list[str]], **options: object) -> None:
        self.err = io.StringIO()
        self._stop = threading.Event()
        self.result: int | None = None
        self._thread = threading.Thread(target=self._run, args=(argvs, options), daemon=True)
        self._thread.start()

    def _run(self, argvs: dict[str, list[str]], options: dict) -> None:
        self.result = supervise(argvs, self._stop.is_set, poll_s=0.05, err=self.err, **options)

    def stop(self) -> int | None:
        self._stop.set()
        return self.wait()

    def wait(self, timeout: float = 60) -> int | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "supervisor did not return"
        return self.result


@pytest.fixture
def supervisors() -> Iterator[list[_Supervisor]]:
    started: list[_Supervisor] = []
    yield started
    for supervisor in started:
        supervisor.stop()


def test_backoff_doubles_up_to_thirty_seconds() -> None:
    assert [backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_killed_child_is_restarted_and_the_others_keep_running(tmp_path: Path, supervisors) -> None:
    worker_pids, api_pids = tmp_path / "worker.pids", tmp_path / "api.pids"
    supervisor = _Supervisor({"worker": _child(worker_pids), "api": _child(api_pids)})
    supervisors.append(supervisor)
    _wait_for(lambda: len(_pids(worker_pids)) == 1 and len(_pids(api_pids)) == 1)
    [first] = _pids(worker_pids)

    os.kill(first, signal.SIGKILL)
    _wait_for(lambda: len(_pids(worker_pids)) == 2)

    assert "worker exited with code -9; restarting in 1 s" in supervisor.err.getvalue()
    second = _pids(worker_pids)[1]
    assert second != first and not _gone(second)
    assert len(_pids(api_pids)) == 1 and not _gone(_pids(api_pids)[0])  # the others were left alone

    assert supervisor.stop() == 0
    assert _gone(second) and _gone(_pids(api_pids)[0])
    # Stopping sends SIGTERM; the children's exits by signal 15 are not reported as crashes.
    assert supervisor.err.getvalue().count("exited with code") == 1, supervisor.err.getvalue()


def test_a_child_that_keeps_crashing_stops_the_router(tmp_path: Path, supervisors) -> None:
    crasher_pids, steady_pids = tmp_path / "crasher.pids", tmp_path / "steady.pids"
    supervisor = _Supervisor({"crasher": _child(crasher_pids, "sys.exit(3)"), "steady": _child(steady_pids)},
                             crash_limit=3)
    supervisors.append(supervisor)

    assert supervisor.wait(timeout=90) == 1

    err = supervisor.err.getvalue()
    assert "crasher exited with code 3; restarting in 1 s" in err
    assert "crasher exited with code 3; restarting in 2 s" in err
    assert "crasher exited with code 3, 3 times within 60 s; giving up" in err
    assert len(_pids(crasher_pids)) == 3
    assert _gone(_pids(steady_pids)[0])  # everything else is stopped too


def test_run_refuses_the_development_secret_key_outside_the_embedded_mode(tmp_path: Path) -> None:
    settings = Settings.from_env({"FURIWAKE_HOME": str(tmp_path),
                                  "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/furiwake"})
    with pytest.raises(ConfigError, match="^SECRET_KEY: "):
        run(settings, train_if_missing=False)  # refused before it migrates: nothing listens on port 9
