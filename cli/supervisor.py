"""`furiwake run` / `make run`: migrate, train the bundled model if there is none, then run the API (gunicorn),
one classify worker, a trainer (the `training` queue) and Celery beat side by side until Ctrl-C or SIGTERM, which
stop them all.

A child that dies on its own (a crash, an OOM kill) is restarted after a back-off of 1, 2, 4 … up to 30 s, and the
supervisor says so on stderr; tickets wait in the database and the broker meanwhile. Only a child that keeps dying
(CRASH_LIMIT times within CRASH_WINDOW_S) stops the whole router: that is a configuration error, not bad luck.

The children inherit this process's environment, plus PROMETHEUS_MULTIPROC_DIR (metrics_env), and read the same
Settings from it (FURIWAKE_HOME's default does not depend on the current directory), so nothing is re-serialised
for them. `python -u` keeps their
output unbuffered, as PYTHONUNBUFFERED would, without writing to the environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from api.security import plain_http_warning, require_secret_key
from core.artifacts import current_version
from core.config import METRICS_DIR_VARIABLE, Settings
from core.migrate import upgrade

BACKOFF_MAX_S = 30.0
CRASH_LIMIT = 5
CRASH_WINDOW_S = 60.0
STOP_GRACE_S = 15.0


def _python() -> list[str]:
    return [sys.executable, "-u"]


def commands(settings: Settings) -> dict[str, list[str]]:
    embedded = ["--without-mingle", "--without-gossip", "--without-heartbeat"] if settings.embedded_broker else []
    return {
        "api": [*_python(), "-m", "gunicorn", "--config", "python:api.gunicorn_conf",
                "--bind", f"{settings.host}:{settings.port}", "--workers", str(settings.web_concurrency),
                "--access-logfile", "-", "api.wsgi:app"],
        "worker": [*_python(), "-m", "celery", "-A", "worker.classify_app", "worker", "-Q", "classify,mail",
                   "--concurrency", str(settings.worker_concurrency), "--loglevel", "INFO", *embedded],
        "beat": [*_python(), "-m", "celery", "-A", "worker.beat", "beat", "--loglevel", "INFO",
                 "--schedule", str(settings.home / "var" / "celerybeat-schedule")],
        # Retraining (docs/retraining.md): the nightly job and the Models page's button, one at a time.
        "trainer": [*_python(), "-m", "celery", "-A", "worker.trainer_app", "worker", "-Q", "training",
                    "--concurrency", "1", "-n", "trainer@%h", "--loglevel", "INFO", *embedded],
    }


@dataclass
class _Child:
    """One supervised command: its current process, when it started, and its recent crashes."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None  # set while waiting out a back-off
    consecutive: int = 0  # crashes since it last ran for a whole CRASH_WINDOW_S
    crashes: deque[float] = field(default_factory=deque)
    env: Mapping[str, str] | None = None  # None: this process's environment

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env)
        self.started_at = time.monotonic()
        self.restart_at = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def backoff(consecutive: int, cap: float = BACKOFF_MAX_S) -> float:
    """Seconds before restarting a child that has crashed `consecutive` times in a row: 1, 2, 4, … cap."""
    return float(min(cap, 2 ** max(0, consecutive - 1)))


def supervise(
    argvs: Mapping[str, list[str]],
    should_stop: Callable[[], bool],
    *,
    crash_limit: int = CRASH_LIMIT,
    crash_window_s: float = CRASH_WINDOW_S,
    poll_s: float = 0.5,
    err: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run every command until should_stop() (then stop them all: 0), restarting any that exits on its own; give
    up (non-zero) when one exits crash_limit times within crash_window_s."""
    err = err if err is not None else sys.stderr
    children = [_Child(name, list(argv), env=env) for name, argv in argvs.items()]
    for child in children:
        child.start()
    exit_code = 0
    while not should_stop():
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start()
                continue
            if child.running() or should_stop():  # a child stopped by our own Ctrl-C is no crash
                continue
            code = child.process.returncode if child.process is not None else 1
            if now - child.started_at >= crash_window_s:
                child.consecutive = 0  # it ran well for a while: this crash starts a new series
            child.consecutive += 1
            child.crashes.append(now)
            while child.crashes and now - child.crashes[0] > crash_window_s:
                child.crashes.popleft()
            if len(child.crashes) >= crash_limit:
                print(f"{child.name} exited with code {code}, {len(child.crashes)} times within "
                      f"{crash_window_s:g} s; giving up and stopping the others", file=err, flush=True)
                exit_code = 1
                break
            delay = backoff(child.consecutive)
            print(f"{child.name} exited with code {code}; restarting in {delay:g} s", file=err, flush=True)
            child.restart_at = now + delay
        if exit_code:
            break
        time.sleep(poll_s)
    _stop_all(children)
    return exit_code


def _stop_all(children: list[_Child]) -> None:
    running = [child.process for child in children if child.process is not None and child.running()]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def metrics_env(settings: Settings) -> dict[str, str]:
    """The children's environment: this one plus PROMETHEUS_MULTIPROC_DIR, emptied for this run.

    Every child writes its metrics there and the API's /metrics adds them up (core/metrics.py), so it must be set
    before they start, and files a previous run left (processes long gone) must not be added to this run's.
    """
    directory = settings.metrics_dir or settings.home / "var" / "metrics"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return {**os.environ, METRICS_DIR_VARIABLE: str(directory)}


def train_bundled_model(settings: Settings) -> None:
    print(f"no model in {settings.model_dir} yet: training one on the bundled corpus (about 2 minutes)...",
          flush=True)
    subprocess.run([*_python(), "-m", "cli", "train"], check=True)


def run(settings: Settings, train_if_missing: bool = True) -> int:
    require_secret_key(settings)  # before anything starts: gunicorn would refuse it anyway, five times over
    (settings.home / "var").mkdir(parents=True, exist_ok=True)
    print("migrating the database...", flush=True)
    upgrade(settings.database_url)
    if current_version(settings.model_dir) is None and train_if_missing:
        train_bundled_model(settings)
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    base = f"http://127.0.0.1:{settings.port}"
    print(f"\nfuriwake is starting (model {current_version(settings.model_dir)}):\n"
          f"  web form      {base}/\n  JSON API      {base}/api/v1/tickets\n"
          f"  OpenAPI       {base}/api/v1/openapi.json\n  health        {base}/healthz  {base}/readyz\n"
          f"  models        {base}/agent/models\n"
          f"  database      {settings.database_url.split('@')[-1]}\n  broker        {settings.broker_url}\n"
          "Press Ctrl-C to stop.\n", flush=True)
    warning = plain_http_warning(settings)
    if warning:
        print(f"warning: {warning}\n", file=sys.stderr, flush=True)
    exit_code = supervise(commands(settings), lambda: stopping, env=metrics_env(settings))
    print("stopped.", flush=True)
    return exit_code
