"""The supervisor of `furiwake run` against real child processes: a killed child comes back after its back-off, one
that keeps crashing stops the router, and a stop asked for is no crash, is quick, and is reported as "stopped";
"ready" is said only once the API answers and a worker serves a model."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.supervisor import STOP_GRACE_S, _alive, announce_when_ready, backoff, run, supervise
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


def _dead(pid: int) -> bool:
    """Gone, or a zombie its new parent (whatever adopted the orphan) has not reaped yet: either way, not running."""
    try:
        return _gone(pid) or "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


class _Supervisor:
    """supervise() on a thread (signals stay with pytest's main thread); stop() is what Ctrl-C would do."""

    def __init__(self, argvs: dict[str, list[str]], **options: object) -> None:
        self.err = io.StringIO()
        self.out = io.StringIO()
        self._stop = threading.Event()
        self.result: int | None = None
        self._thread = threading.Thread(target=self._run, args=(argvs, options), daemon=True)
        self._thread.start()

    def _run(self, argvs: dict[str, list[str]], options: dict) -> None:
        self.result = supervise(argvs, self._stop.is_set, poll_s=0.05, err=self.err, out=self.out, **options)

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


def test_a_killed_child_not_reaped_yet_counts_as_dead() -> None:
    """A pool child killed at the end of a stop is a zombie until whatever adopted it reaps it; its heartbeat row
    must go all the same (cli.supervisor.forget_dead_workers)."""
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _alive(child.pid)
        child.kill()
        _wait_for(lambda: "\nState:\tZ" in Path(f"/proc/{child.pid}/status").read_text())
        assert not _alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not _alive(child.pid)


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
    # Stopping sends SIGTERM; the children's exits by signal 15 are not reported as crashes, but as stopped.
    assert supervisor.err.getvalue().count("exited with code") == 1, supervisor.err.getvalue()
    assert "worker stopped" in supervisor.out.getvalue() and "api stopped" in supervisor.out.getvalue()


def test_a_stop_is_quick_even_when_a_child_and_its_own_child_ignore_sigterm(tmp_path: Path, supervisors) -> None:
    """Like a Celery worker in a warm shutdown or gunicorn waiting out its graceful timeout: the supervisor waits
    STOP_GRACE_S for everyone together, then kills what is left, the stubborn child's own children included."""
    polite_pids, stubborn_pids, grandchild_pids = (tmp_path / f"{name}.pids"
                                                   for name in ("polite", "stubborn", "grandchild"))
    ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    grandchild = _child(grandchild_pids, "time.sleep(120)")
    grandchild[2] = ignore + grandchild[2]
    stubborn = _child(stubborn_pids, f"import subprocess; subprocess.Popen({grandchild!r}); time.sleep(120)")
    stubborn[2] = ignore + stubborn[2]
    supervisor = _Supervisor({"polite": _child(polite_pids), "stubborn": stubborn})
    supervisors.append(supervisor)
    _wait_for(lambda: all(_pids(path) for path in (polite_pids, stubborn_pids, grandchild_pids)))

    started = time.monotonic()
    assert supervisor.stop() == 0
    took = time.monotonic() - started

    assert took < 6, took  # the issue measured ~17 s
    assert all(_gone(_pids(path)[0]) for path in (polite_pids, stubborn_pids))
    _wait_for(lambda: _dead(_pids(grandchild_pids)[0]), timeout=5)
    out = supervisor.out.getvalue()
    assert "polite stopped" in out and f"stubborn stopped (killed after {STOP_GRACE_S:g} s" in out, out
    assert supervisor.err.getvalue() == ""  # nothing about a stop we asked for reads as an error


def test_each_child_leads_its_own_process_group(tmp_path: Path, supervisors) -> None:
    """So a Ctrl-C in the terminal (SIGINT to the foreground group) reaches the supervisor alone, which stops each
    child once; a Celery pool child never gets a stray signal it would report as an error."""
    groups = tmp_path / "groups"
    write_group = f"with open({str(groups)!r}, 'a') as f: f.write(f'{{os.getpgid(0)}}\\n')\ntime.sleep(120)"
    supervisor = _Supervisor({"worker": _child(groups, write_group)})
    supervisors.append(supervisor)
    _wait_for(lambda: len(_pids(groups)) == 2)
    pid, group = _pids(groups)
    assert group == pid != os.getpgid(0)


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


def test_ready_is_announced_only_when_a_worker_serves_a_model_and_the_api_answers(
        make_settings, sqlite_url: str, redis_url: str) -> None:
    """Against the real app on a real HTTP server: "waiting for the worker to load the model… (N s)" while no
    worker heartbeat says it serves, then "waiting for the API" while the API does not answer, then "ready"."""
    from werkzeug.serving import make_server

    from api import create_app
    from cli.supervisor import serving_workers
    from core import heartbeats
    from core.runtime import Runtime

    settings = make_settings(database_url=sqlite_url, broker_url=redis_url)
    runtime = Runtime.build(settings)
    out, stopped = io.StringIO(), threading.Event()
    port_holder = make_server("127.0.0.1", 0, lambda *_: [])  # a free port, nothing listening on it yet
    port = port_holder.socket.getsockname()[1]
    port_holder.server_close()
    announcer = threading.Thread(target=announce_when_ready, daemon=True,
                                 args=(f"http://127.0.0.1:{port}", serving_workers(runtime), stopped, out),
                                 kwargs={"poll_s": 0.05, "note_every_s": 0.2})
    announcer.start()
    app = create_app(settings)
    try:
        _wait_for(lambda: "waiting for the worker to load the model… (" in out.getvalue(), timeout=10)
        with runtime.unit_of_work() as session:
            heartbeats.beat(session, "worker-host", 4242, None)  # up, still loading: not serving
        time.sleep(0.5)
        assert "waiting for the API" not in out.getvalue() and "ready" not in out.getvalue()

        with runtime.unit_of_work() as session:
            heartbeats.beat(session, "worker-host", 4242, "20261203-cafe")
        _wait_for(lambda: "waiting for the API to answer… (" in out.getvalue(), timeout=10)
        assert "ready" not in out.getvalue()

        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        announcer.join(timeout=10)
        assert not announcer.is_alive(), out.getvalue()
        server.shutdown()
        last = out.getvalue().splitlines()[-1]
        assert last.startswith("furiwake is ready (") and "serve model 20261203-cafe" in last, last
    finally:
        stopped.set()
        app.extensions["furiwake"].engine.dispose()
        runtime.dispose()


# Every variable Settings reads that could point `furiwake run` elsewhere: blanked, so it runs on its defaults.
_SETTINGS_VARIABLES = ("DATABASE_URL", "BROKER_URL", "MODEL_DIR", "HOST", "PORT", "SECRET_KEY", "WEB_CONCURRENCY",
                       "WORKER_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR", "RESULT_BACKEND", "LOG_FORMAT", "LOG_LEVEL")


def test_furiwake_run_says_ready_only_when_a_worker_serves_and_stops_quickly_on_ctrl_c(
        processes, trained_model_dir: Path, tmp_path: Path) -> None:
    import requests

    from core.artifacts import current_version
    from tests.support.processes import free_port, wait_until

    home = tmp_path / "home"
    shutil.copytree(trained_model_dir, home / "models")
    port = free_port()
    env = {name: "" for name in _SETTINGS_VARIABLES if name in os.environ}
    env.update({"FURIWAKE_HOME": str(home), "PORT": str(port)})
    run_process = processes.start("run", [sys.executable, "-m", "cli", "run", "--no-train"], env, supervisor=True)
    [log] = [log for name, _child, log in processes.children if name == "run"]
    wait_until(lambda: "furiwake is ready" in log.read_text(errors="replace"), 180, processes, "the ready banner")

    text = log.read_text(errors="replace")
    version = current_version(home / "models")
    assert text.index(f"serving model {version} (loaded in ") < text.index("furiwake is ready"), text
    assert "waiting for the worker to load the model… (" in text.split("furiwake is ready")[0], text
    body = requests.get(f"http://127.0.0.1:{port}/readyz?workers=1", timeout=5).json()
    assert body["status"] == "ready" and body["workers"]["models"] == [version], body

    started = time.monotonic()
    os.killpg(run_process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    assert run_process.wait(timeout=30) == 0
    took = time.monotonic() - started
    text = log.read_text(errors="replace")
    assert took < STOP_GRACE_S + 4, f"stopping took {took:.1f} s\n{text[-3000:]}"  # margin for a loaded machine
    for name in ("api", "worker", "trainer", "beat"):
        assert f"{name} stopped (" in text, text[-3000:]
    assert "exited with" not in text, text[-3000:]  # no crash, and no pool child reported dead by a stray signal
    assert "cpu_feature_guard" not in text and "oneDNN custom operations" not in text  # TensorFlow's start-up lines
    with sqlite3.connect(home / "var" / "furiwake.db") as db:
        assert db.execute("SELECT count(*) FROM worker_heartbeats").fetchone() == (0,)  # removed on the way out
