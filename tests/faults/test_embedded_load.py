"""The embedded mode (`make run`: SQLite and the filesystem broker) under 8 concurrent clients for 60 s.

`furiwake run` starts what it always starts (gunicorn with 2 processes, one classify worker, the trainer and beat),
all on one SQLite file: the API's writes and reads, the worker's reads and route writes and the sweep share its one
write lock, with the trainer and beat running alongside. None of them may answer a client 500 ("database is
locked") or lose a ticket.
Everything is `make run`'s default (rate limits included: the intake's is off in the embedded mode) except the
sweep's period and age, shortened (2 s) so that the sweep also writes (re-enqueues the tickets a busy worker has
not reached yet) while the load runs, instead of only reading; the duplicate messages that makes must change
nothing (written_twice).
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from core.config import Settings
from tests.support.load import IntakeReport, corpus_texts, outcome, post_ticket, record, wait_until_decided
from tests.support.processes import Processes, free_port, wait_until

CLIENTS = 8
LOAD_S = 60.0
MAX_TICKETS = 20_000  # more than 8 clients post in LOAD_S here (~80/s were measured)
STATUS_EVERY = 4  # a customer looks at their ticket's page once for every few tickets posted
# Every variable Settings reads: blanked, so `furiwake run` sees its defaults whatever this shell exports.
SETTINGS_VARIABLES = ("DATABASE_URL", "BROKER_URL", "MODEL_DIR", "HOST", "PORT", "SECRET_KEY", "RATE_LIMIT_INTAKE",
                      "RATE_LIMIT_SIGNIN", "WEB_CONCURRENCY", "WORKER_CONCURRENCY", "WORKER_TF_THREADS",
                      "CLASSIFY_BATCH_SIZE", "CLASSIFY_BATCH_WAIT_MS", "RESULT_BACKEND", "TRUSTED_PROXIES",
                      "PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN", "RETRAIN_SCHEDULE")  # fmt: skip


def _load(base: str, report: IntakeReport, lookups: Counter[int]) -> None:
    """CLIENTS threads, each posting tickets back to back (and now and then reading one back) for LOAD_S."""
    texts = corpus_texts(MAX_TICKETS)
    started = time.monotonic()
    stop_at = started + LOAD_S
    counter = iter(range(len(texts)))
    lock = threading.Lock()

    def client() -> None:
        rng = random.Random()
        while time.monotonic() < stop_at:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            post_ticket(base, f"fault-{index}", texts[index], report, deadline=stop_at + 30)
            if index % STATUS_EVERY == 0 and report.accepted:
                with report.lock:
                    ticket_id = rng.choice(list(report.accepted.values()))
                try:
                    status = requests.get(f"{base}/api/v1/tickets/{ticket_id}", timeout=30).status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    lookups[status] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LOAD_S + 90)


def test_embedded_mode_holds_eight_concurrent_clients_for_a_minute(processes: Processes, trained_model_dir,
                                                                   tmp_path: Path):  # fmt: skip
    home = tmp_path / "home"
    shutil.copytree(trained_model_dir, home / "models")  # MODEL_DIR's default: FURIWAKE_HOME/models
    port = free_port()
    env = {name: "" for name in SETTINGS_VARIABLES if name in os.environ}
    env.update({"FURIWAKE_HOME": str(home), "PORT": str(port), "SWEEP_AFTER_SECONDS": "2",
                "SWEEP_EVERY_SECONDS": "2"})  # fmt: skip
    settings = Settings.from_env({**os.environ, **env})
    assert settings.embedded and settings.rate_limit_intake == "off", settings
    processes.start("run", [sys.executable, "-m", "cli", "run", "--no-train"], env, supervisor=True)
    [run_log] = [log for name, _child, log in processes.children if name == "run"]
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=2).ok, 90, processes, "furiwake run's /readyz")
    wait_until(lambda: "loaded in" in run_log.read_text(errors="replace"), 90, processes, "the worker's model")

    report, lookups = IntakeReport(), Counter[int]()
    _load(base, report, lookups)
    waited = wait_until_decided(settings.database_url, timeout=120)
    result = outcome(settings.database_url, report)
    record("embedded mode, 8 clients for 60 s", result)
    log = run_log.read_text(errors="replace")
    print(f"{result.accepted / LOAD_S:.0f} tickets/s accepted; {report.requests} POSTs {dict(report.statuses)}, "
          f"connection errors {report.connection_errors}, "
          f"status lookups {dict(lookups)}, decided {waited} s after the load; "
          f"sweeps that re-enqueued: {log.count('sweep re-enqueued')}")

    assert result.server_errors == 0 and report.statuses[503] == 0, (dict(report.statuses), log[-6000:])
    assert report.connection_errors == 0 and not report.given_up, (report.connection_errors, report.given_up)
    assert set(lookups) == {200}, dict(lookups)
    assert result.accepted < MAX_TICKETS, "the clients ran out of tickets before LOAD_S"
    assert result.accepted > 300, f"only {result.accepted} tickets in {LOAD_S} s: {dict(report.statuses)}"
    assert (result.lost, result.duplicated, result.written_twice, result.failed) == (0, 0, 0, 0), result
    assert result.routed == result.accepted, result
    assert "database is locked" not in log, log[-6000:]
