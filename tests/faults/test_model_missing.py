"""The model directory missing or damaged when the classify worker starts.

The worker must say so in one clear line (the directory, and the fix), without a traceback per batch; the tickets
posted meanwhile must stay pending (never `failed`: it is not their fault), and once a good model is in place they
are routed: the worker loads the version CURRENT names at its next batch, and the sweep (beat, run here with a short
period) sends the waiting tickets again.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from core.artifacts import META_FILE, current_version, set_current
from core.orm import Ticket
from tests.support.load import corpus_texts, outcome, post_tickets, record, wait_until_decided
from tests.support.processes import Processes, service_env, start_api, start_worker, wait_until

TICKETS = 30
BAD_VERSION = "20260101-000000-broken"


def _damage(model_dir: Path, trained_model_dir: Path, how: str) -> None:
    """Leave MODEL_DIR as an operator might find it: empty, or CURRENT naming a version that cannot be loaded."""
    if how == "missing":
        return
    bad = model_dir / BAD_VERSION
    shutil.copytree(trained_model_dir / str(current_version(trained_model_dir)), bad)
    if how == "corrupt model.keras":
        (bad / "model.keras").write_bytes(b"\x00garbage, not a zip archive\xff" * 64)
    else:
        (bad / META_FILE).write_text('{"version": "20260101-000000-broken", "labels": [', encoding="utf-8")
    (model_dir / "CURRENT").write_text(BAD_VERSION + "\n", encoding="utf-8")


def _install_good_model(model_dir: Path, trained_model_dir: Path) -> str:
    """Copy the trained versions in, then point CURRENT at the good one last (as a promotion does, atomically)."""
    for version in trained_model_dir.iterdir():
        if (version / META_FILE).is_file():
            shutil.copytree(version, model_dir / version.name, dirs_exist_ok=True)
    good = str(current_version(trained_model_dir))
    set_current(model_dir, good)
    return good


def _statuses(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return dict(connection.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all())  # type: ignore[arg-type]
    finally:
        engine.dispose()


@pytest.mark.parametrize("how", ["missing", "corrupt model.keras", "corrupt meta.json"])
def test_worker_without_a_usable_model_keeps_tickets_waiting_until_one_is_there(
    how, postgres_url, redis_url, processes: Processes, trained_model_dir, tmp_path
):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    _damage(model_dir, trained_model_dir, how)
    env = service_env(postgres_url, redis_url, model_dir, tmp_path, SWEEP_AFTER_SECONDS="3",
                      SWEEP_EVERY_SECONDS="2")  # fmt: skip
    start_worker(processes, env)
    processes.start("beat", [sys.executable, "-m", "celery", "-A", "worker.beat", "beat", "--loglevel", "INFO",
                             "--schedule", str(tmp_path / "celerybeat-schedule")], env)  # fmt: skip
    base = start_api(processes, env)
    [worker_log] = [log for name, _child, log in processes.children if name == "worker"]
    wait_until(lambda: "without a model" in worker_log.read_text(errors="replace"), 90, processes,
               "the worker's report of its missing model")  # fmt: skip

    report = post_tickets(base, corpus_texts(TICKETS), rate=20, clients=4, deadline_s=60)
    assert len(report.accepted) == TICKETS and report.server_errors == 0, dict(report.statuses)
    # Long enough for the worker to see every ticket and the sweep to send them again at least once.
    wait_until(lambda: worker_log.read_text(errors="replace").count("no model to route with") >= 2, 60, processes,
               "the worker to meet the tickets without a model")  # fmt: skip
    time.sleep(5)
    waiting = _statuses(postgres_url)
    log = worker_log.read_text(errors="replace")

    assert waiting.get("failed", 0) == 0 and sum(waiting.get(s, 0) for s in ("received", "queued")) == TICKETS, (
        waiting, processes.logs())
    said = [line for line in log.splitlines() if "without a model" in line]
    assert said and str(model_dir) in said[0] and "furiwake train" in said[0], log[-4000:]
    if how != "missing":  # the version, and what is wrong with it, by file
        file = how.split()[1]
        assert BAD_VERSION in said[0] and f"{BAD_VERSION}/{file}" in said[0], said[0]
    if how == "corrupt model.keras":
        assert "not a Keras archive" in said[0], said[0]
    assert "Traceback" not in log, log[-4000:]

    good = _install_good_model(model_dir, trained_model_dir)
    waited = wait_until_decided(postgres_url, timeout=90)
    result = outcome(postgres_url, report)
    record(f"model directory {how} at worker start", result)
    print(f"{how}: routed {waited} s after model {good} was put in place; worker said: {said[0][:300]}")
    assert (result.routed, result.failed, result.lost, result.duplicated, result.written_twice) == (
        TICKETS, 0, 0, 0, 0), result
    assert f"serving model {good} (loaded in" in worker_log.read_text(errors="replace")
