"""Real processes for end-to-end tests: gunicorn serving the API and a Celery worker, as in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from bench.processes import free_port, stop  # free_port: the tests import it from here too
from tests.support.paths import ROOT

STOP_WAIT_S = 20  # a supervisor still running this long after its SIGTERM is killed, with its whole group


class Processes:
    """The children one test started, each logging to a file, all stopped (process group and all) at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.children: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.supervisors: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str],
              supervisor: bool = False) -> subprocess.Popen[bytes]:
        """Start a child in a session (and process group) of its own. `supervisor`: it starts children in process
        groups of their own (`furiwake run`), so only its own SIGTERM stops them (stop())."""
        log = self.tmp_path / f"{name}.log"
        child = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=log.open("wb"),
                                 stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, child, log))
        if supervisor:
            self.supervisors.append(child)
        return child

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{log.read_text(errors='replace')[-3000:]}" for name, _, log in self.children)

    def stop(self) -> None:
        """Kill every child with its process group at once, except a supervisor, which gets SIGTERM first and stops
        its children itself (bench.processes.stop). After a test its processes have nothing left to do, and
        waiting for each one's graceful stop (a Celery worker's warm shutdown) cost 3–7 s a test; a graceful stop
        is tested where it is the subject (tests/cli/test_supervisor.py), and a killed worker in
        tests/faults/test_worker_kill.py."""
        stop(self.supervisors, STOP_WAIT_S)
        for _, child, _ in self.children:
            if child not in self.supervisors:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.wait()


def service_env(database_url: str, broker_url: str, model_dir: Path, home: Path, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "BROKER_URL": broker_url, "MODEL_DIR": str(model_dir),
            "FURIWAKE_HOME": str(home), "SECRET_KEY": "e2e", "PYTHONUNBUFFERED": "1",
            "RATE_LIMIT_INTAKE": "100000/minute", "RATE_LIMIT_SIGNIN": "10000/minute", **extra}


def start_api(processes: Processes, env: dict[str, str]) -> str:
    port = free_port()
    processes.start("api", [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                            "api.wsgi:app"], env)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).ok, 60, processes, "API /healthz")
    return base


def start_worker(processes: Processes, env: dict[str, str], embedded: bool = False, concurrency: int = 1) -> None:
    flags = ["--without-mingle", "--without-gossip", "--without-heartbeat"] if embedded else []
    processes.start("worker", [sys.executable, "-m", "celery", "-A", "worker.classify_app", "worker", "-Q",
                               "classify,mail", "--concurrency", str(concurrency), "--loglevel", "INFO", *flags], env)


def wait_until(check: Callable[[], object], timeout: float, processes: Processes, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{processes.logs()}")


def wait_for_worker_model(procs: Processes, timeout: float = 120) -> None:
    """Until the worker's process has loaded its model. A message published while the worker was still starting
    was seen to wait for the sweep (worker-side, reported); the agents' tests are not about that."""
    [log] = [log for name, _child, log in procs.children if name == "worker"]
    wait_until(lambda: "loaded in" in log.read_text(errors="replace"), timeout, procs, "the worker's model")
