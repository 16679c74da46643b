"""`furiwake run` / `make run`: migrate, fetch the database's champion model into MODEL_DIR (or train the bundled
model when neither the database nor MODEL_DIR has one), then run the API (gunicorn), one classify worker, a trainer
(the `training` queue) and Celery beat side by side until Ctrl-C or SIGTERM, which stop them all.

A child that dies on its own (a crash, an OOM kill) is restarted after a back-off of 1, 2, 4 … up to 30 s, and the
supervisor says so on stderr; tickets wait in the database and the broker meanwhile. Only a child that keeps dying
(CRASH_LIMIT times within CRASH_WINDOW_S) stops the whole router: that is a configuration error, not bad luck.

Stopping sends SIGTERM to every child at once and waits for them together, at most STOP_GRACE_S, then kills what
is left with its own children (each child leads its own process group, so a Ctrl-C in the terminal reaches the
supervisor alone and every child gets exactly one SIGTERM, from us). A child stopped that way is reported as
"stopped", never as a crash.

"ready" is printed only when the API answers /readyz and a classify worker serves a model (core/heartbeats.py):
the Celery worker says "ready" long before its children have loaded and compiled the model.

The children inherit this process's environment, plus PROMETHEUS_MULTIPROC_DIR (metrics_env), and read the same
Settings from it (FURIWAKE_HOME's default does not depend on the current directory), so nothing is re-serialised
for them. `python -u` keeps their
output unbuffered, as PYTHONUNBUFFERED would, without writing to the environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from core import heartbeats, model_store, registry
from core.artifacts import current_version, version_dir
from core.config import METRICS_DIR_VARIABLE, Settings
from core.migrate import upgrade
from core.runtime import Runtime
from core.startup_checks import plain_http_warning, require_secret_key

BACKOFF_MAX_S = 30.0
CRASH_LIMIT = 5
CRASH_WINDOW_S = 60.0
# Then SIGKILL, so that `furiwake run` stops within 5 s. An idle Celery worker's warm shutdown alone takes 3-6 s
# here (its blocking loop on the embedded broker drains for up to 2 s between shutdown checks, and billiard's pool
# threads sleep 1 s per turn); it has stopped consuming by then, and a batch cut short is sent again by the sweep.
STOP_GRACE_S = 4.0
WAITING_NOTE_EVERY_S = 5.0


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
        # Retraining (docs/retraining.md): the nightly job and the Models page's button, one at a time. A fresh
        # child after each retrain: TensorFlow (hundreds of MiB) is held only while training.
        "trainer": [*_python(), "-m", "celery", "-A", "worker.trainer_app", "worker", "-Q", "training",
                    "--concurrency", "1", "--max-tasks-per-child", "1", "-n", "trainer@%h", "--loglevel", "INFO",
                    *embedded],
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
        # Its own process group: the terminal's Ctrl-C (sent to the foreground group) reaches the supervisor only,
        # which then stops each child once, and a child that outlives the grace period is killed group and all.
        self.process = subprocess.Popen(self.argv, env=self.env, process_group=0)
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
    poll_s: float = 0.2,  # also how soon a Ctrl-C starts the stop
    err: TextIO | None = None,
    out: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    stop_grace_s: float = STOP_GRACE_S,
) -> int:
    """Run every command until should_stop() (then stop them all: 0), restarting any that exits on its own; give
    up (non-zero) when one exits crash_limit times within crash_window_s. Crashes are reported on err, the
    orderly stop on out."""
    err = err if err is not None else sys.stderr
    out = out if out is not None else sys.stdout
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
    _stop_all(children, stop_grace_s, out)
    return exit_code


def _stop_all(children: list[_Child], grace_s: float, out: TextIO) -> None:
    """SIGTERM to every running child at once, then wait for all of them together; SIGKILL (the child's whole
    process group: a Celery pool child or gunicorn worker must not outlive it) whatever is left after grace_s."""
    running = [child for child in children if child.running()]
    started = time.monotonic()
    for child in running:
        assert child.process is not None
        child.process.send_signal(signal.SIGTERM)
    deadline = started + grace_s
    waiting = list(running)
    while waiting:
        still = [child for child in waiting if child.running()]
        for child in waiting:
            if child not in still:
                print(f"{child.name} stopped ({time.monotonic() - started:.1f} s)", file=out, flush=True)
        waiting = still
        if waiting and time.monotonic() >= deadline:
            for child in waiting:
                assert child.process is not None
                _kill_group(child.process)
                print(f"{child.name} stopped (killed after {grace_s:g} s, its shutdown still running)", file=out,
                      flush=True)
            break
        time.sleep(0.05)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:  # a killed pool child its adopter has not reaped yet is a zombie: it serves nothing
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return not sys.platform.startswith("linux")  # gone meanwhile; elsewhere there is no /proc to ask


def forget_dead_workers(settings: Settings) -> None:
    """This host's heartbeats of processes that are gone (a previous run killed before it could remove them, or a
    pool child this run killed when its shutdown outlasted STOP_GRACE_S, e.g. while compiling a shape): without
    this, a banner or /readyz could count a dead worker for up to STALE_AFTER_S."""
    runtime = Runtime.build(settings)
    try:
        with runtime.unit_of_work() as session:
            heartbeats.forget_dead_here(session, heartbeats.this_process()[0], _alive)
    finally:
        runtime.dispose()


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # our own API: never through an HTTP proxy


def _probe(url: str) -> dict[str, object] | None:
    """/readyz?workers=1's JSON body (200 or 503), or None while the API does not answer."""
    try:
        with _LOCAL.open(url, timeout=2) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as error:
        try:
            return dict(json.load(error))
        except ValueError:
            return {}
    except (OSError, ValueError):
        return None


def serving_workers(runtime: Runtime) -> Callable[[], heartbeats.Serving | None]:
    """What the worker heartbeats say now (None while the database cannot say)."""

    def read() -> heartbeats.Serving | None:
        try:
            with runtime.sessions() as session:
                return heartbeats.live(session)
        except Exception:  # noqa: BLE001 - still starting, or the database is briefly away: ask again
            return None

    return read


def announce_when_ready(base: str, serving: Callable[[], heartbeats.Serving | None], stopped: threading.Event,
                        out: TextIO, *, poll_s: float = 0.5, note_every_s: float = WAITING_NOTE_EVERY_S) -> None:
    """Print "ready" once a worker serves a model (its heartbeat, read from the database: no request to log) and
    the API then answers /readyz?workers=1; until then, every note_every_s, what it waits for and for how long."""
    started = last_note = time.monotonic()
    while not stopped.wait(poll_s):
        state = serving()
        body = _probe(f"{base}/readyz?workers=1") if state is not None and state.serving else None
        workers = body.get("workers") if body else None
        elapsed = time.monotonic() - started
        if body and body.get("status") == "ready" and isinstance(workers, dict):
            models = ", ".join(str(model) for model in workers.get("models", []))
            print(f"furiwake is ready ({elapsed:.0f} s): the API answers and {workers.get('serving')} worker "
                  f"process(es) serve model {models}.", file=out, flush=True)
            return
        if time.monotonic() - last_note >= note_every_s:
            last_note = time.monotonic()
            what = "the worker to load the model" if not (state and state.serving) else "the API to answer"
            print(f"waiting for {what}… ({elapsed:.0f} s)", file=out, flush=True)


def train_bundled_model(settings: Settings) -> None:
    print(f"no model in the database or in {settings.model_dir} yet: training one on the bundled corpus (about 2 "
          "minutes)...", flush=True)
    subprocess.run([*_python(), "-m", "cli", "train"], check=True)


def model_to_serve(settings: Settings) -> str | None:
    """The version the workers will serve, its files made ready in MODEL_DIR; None when neither the database nor
    MODEL_DIR holds a model that can be served (then, and only then, `run` trains one).

    registry.sync does the work, as for the workers and `furiwake models`: the database's champion is fetched into
    an empty or stale MODEL_DIR (a second machine over the same database trains nothing), and a version that
    MODEL_DIR/CURRENT names but the registry does not know (trained here before it kept files) is adopted and
    uploaded. A CURRENT the registry cannot record (a damaged or hand-written meta.json) is still served by the
    workers from this disk, so it counts too."""
    runtime = Runtime.build(settings)
    try:
        with runtime.unit_of_work() as session:
            champion = registry.sync(session, settings.model_dir)
    except ValueError as exc:  # MalformedMetaError: CURRENT's meta.json cannot be registered
        print(f"warning: the model in {settings.model_dir}/CURRENT cannot be registered: {exc}", file=sys.stderr,
              flush=True)
        champion = None
    finally:
        runtime.dispose()
    for version in (champion, current_version(settings.model_dir)):
        if version is not None and model_store.is_servable(
                model_store.local_files(version_dir(settings.model_dir, version))):
            return version
    return None


def run(settings: Settings, train_if_missing: bool = True) -> int:
    require_secret_key(settings)  # before anything starts: gunicorn would refuse it anyway, five times over
    (settings.home / "var").mkdir(parents=True, exist_ok=True)
    print("migrating the database...", flush=True)
    upgrade(settings.database_url)
    model = model_to_serve(settings)
    if model is None and train_if_missing:
        train_bundled_model(settings)
        model = model_to_serve(settings)  # registers what it trained: the champion from the start
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    base = f"http://127.0.0.1:{settings.port}"
    forget_dead_workers(settings)
    print(f"\nfuriwake is starting (model {model or 'none yet'}):\n"
          f"  web form      {base}/\n  JSON API      {base}/api/v1/tickets\n"
          f"  OpenAPI       {base}/api/v1/openapi.json\n  health        {base}/healthz  {base}/readyz\n"
          f"  models        {base}/agent/models\n"
          f"  database      {settings.database_url.split('@')[-1]}\n  broker        {settings.broker_url}\n"
          "Press Ctrl-C to stop. Not ready yet: the worker loads its model first.\n", flush=True)
    warning = plain_http_warning(settings)
    if warning:
        print(f"warning: {warning}\n", file=sys.stderr, flush=True)
    stopped = threading.Event()
    probe_host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    probe_base = f"http://{f'[{probe_host}]' if ':' in probe_host else probe_host}:{settings.port}"
    runtime = Runtime.build(settings)
    announcer = threading.Thread(target=announce_when_ready, daemon=True,
                                 args=(probe_base, serving_workers(runtime), stopped, sys.stdout))
    announcer.start()
    try:
        exit_code = supervise(commands(settings), lambda: stopping, env=metrics_env(settings))
    finally:
        stopped.set()
        runtime.dispose()
    try:
        forget_dead_workers(settings)
    except Exception as exc:  # noqa: BLE001 - the rows go stale after STALE_AFTER_S anyway
        print(f"warning: worker heartbeats not cleared: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    print("stopped.", flush=True)
    return exit_code
