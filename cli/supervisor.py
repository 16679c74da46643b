"""`furiwake run` / `make run`: migrate, train the bundled model if there is none, then run the API (gunicorn),
one classify worker, a trainer (the `training` queue) and Celery beat side by side until Ctrl-C, which stops
them all.

If any of them exits on its own, the others are stopped too: a half-running router is worse than a stopped one.

The children inherit this process's environment untouched and read the same Settings from it (FURIWAKE_HOME's
default does not depend on the current directory), so nothing is re-serialised for them. `python -u` keeps their
output unbuffered, as PYTHONUNBUFFERED would, without writing to the environment.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from core.artifacts import current_version
from core.config import Settings
from core.migrate import upgrade


def _python() -> list[str]:
    return [sys.executable, "-u"]


def commands(settings: Settings) -> dict[str, list[str]]:
    embedded = ["--without-mingle", "--without-gossip", "--without-heartbeat"] if settings.embedded_broker else []
    return {
        "api": [*_python(), "-m", "gunicorn", "--bind", f"{settings.host}:{settings.port}",
                "--workers", str(settings.web_concurrency), "--access-logfile", "-", "api.wsgi:app"],
        "worker": [*_python(), "-m", "celery", "-A", "worker.classify_app", "worker", "-Q", "classify",
                   "--concurrency", str(settings.worker_concurrency), "--loglevel", "INFO", *embedded],
        "beat": [*_python(), "-m", "celery", "-A", "worker.beat", "beat", "--loglevel", "INFO",
                 "--schedule", str(settings.home / "var" / "celerybeat-schedule")],
        # Retraining (docs/retraining.md): the nightly job and the Models page's button, one at a time.
        "trainer": [*_python(), "-m", "celery", "-A", "worker.trainer_app", "worker", "-Q", "training",
                    "--concurrency", "1", "-n", "trainer@%h", "--loglevel", "INFO", *embedded],
    }


def train_bundled_model(settings: Settings) -> None:
    print(f"no model in {settings.model_dir} yet: training one on the bundled corpus (about 2 minutes)...",
          flush=True)
    subprocess.run([*_python(), "-m", "cli", "train"], check=True)


def run(settings: Settings, train_if_missing: bool = True) -> int:
    (settings.home / "var").mkdir(parents=True, exist_ok=True)
    print("migrating the database...", flush=True)
    upgrade(settings.database_url)
    if current_version(settings.model_dir) is None and train_if_missing:
        train_bundled_model(settings)
    children = {name: subprocess.Popen(cmd) for name, cmd in commands(settings).items()}
    base = f"http://127.0.0.1:{settings.port}"
    print(f"\nfuriwake is starting (model {current_version(settings.model_dir)}):\n"
          f"  web form      {base}/\n  JSON API      {base}/api/v1/tickets\n"
          f"  OpenAPI       {base}/api/v1/openapi.json\n  health        {base}/healthz  {base}/readyz\n"
          f"  models        {base}/agent/models\n"
          f"  database      {settings.database_url.split('@')[-1]}\n  broker        {settings.broker_url}\n"
          "Press Ctrl-C to stop.\n", flush=True)

    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with code {child.returncode}; stopping the others", file=sys.stderr)
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    print("stopped.", flush=True)
    return exit_code
