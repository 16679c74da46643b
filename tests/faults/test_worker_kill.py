"""A classify worker killed in the middle of a batch: the batch is sent again and routed once.

To kill it mid-batch for certain, the test holds a row lock on every ticket it posted (SELECT … FOR UPDATE in a
transaction of its own): the worker's child reads its batch, classifies it, and then waits in the UPDATE that writes
the routes, which pg_stat_activity shows as a backend waiting for a lock. That is the moment the test kills it, then
it lets go of the lock. PostgreSQL rolls back the dead child's UPDATE (its client is gone), so nothing is written
twice unless the recovery writes twice.

(a) Only the child dies: the worker's parent sends the batch again (worker.batching) and a new child routes it.
    No beat runs, so the sweep cannot be what saved the tickets.
    A ticket whose child dies on its last try (worker.retry) ends `failed`: one that kills every child cannot loop.
(b) The whole worker dies (SIGKILL to its process group, as an OOM kill of the container): a new worker, started
    as compose's `restart: unless-stopped` or systemd's `Restart=on-failure` would, routes everything still queued,
    and the sweep (beat) sends again the tickets the dead worker had taken but not finished (docs/operations.md).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, select, text

from core.messaging import CLASSIFY_QUEUE, CLASSIFY_TASK
from core.orm import Ticket
from tests.support.load import corpus_texts, outcome, post_tickets, record, wait_until_decided
from tests.support.processes import (
    Processes,
    free_port,
    service_env,
    start_api,
    start_worker,
    wait_for_worker_model,
    wait_until,
)
from worker import retry

TICKETS = 200
RECOVERY_S = 60  # a new child loads its model (2 s idle, 15 s seen on a busy machine), then routes 200 tickets


@contextmanager
def routes_held(database_url: str, prefix: str, count: int = TICKETS) -> Iterator[None]:
    """Hold a row lock on every ticket posted with `prefix` until the block ends: the worker's UPDATE waits."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            locked = connection.execute(
                select(Ticket.id).where(Ticket.idempotency_key.like(f"{prefix}-%")).with_for_update()
            ).all()
            assert len(locked) == count
            yield
            transaction.rollback()
    finally:
        engine.dispose()


def waiting_for_a_lock(database_url: str) -> bool:
    """True once some session of this test's database waits for a row lock: the worker's UPDATE of a batch."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return bool(connection.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )))  # fmt: skip
    finally:
        engine.dispose()


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (the prefork pool's children of a Celery worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, …
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def worker_log(processes: Processes, name: str = "worker") -> str:
    [log] = [log for child_name, _child, log in processes.children if child_name == name]
    return log.read_text(errors="replace")


def check(database_url: str, report, processes: Processes, fault: str) -> None:  # type: ignore[no-untyped-def]
    try:
        waited = wait_until_decided(database_url, timeout=RECOVERY_S)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{processes.logs()}") from exc
    result = outcome(database_url, report, prefix=fault)
    record(f"{fault}: decided {waited} s after the kill", result)
    assert result.accepted == TICKETS
    assert (result.lost, result.duplicated, result.written_twice, result.server_errors) == (0, 0, 0, 0), result
    assert result.routed == TICKETS, result


def test_a_child_killed_mid_batch_has_its_batch_sent_again_without_the_sweep(
    processes, postgres_url, redis_url, trained_model_dir, tmp_path
):
    env = service_env(postgres_url, redis_url, trained_model_dir, tmp_path, SWEEP_AFTER_SECONDS="3600")
    base = start_api(processes, env)
    report = post_tickets(base, corpus_texts(TICKETS), rate=200, prefix="child-kill", deadline_s=60)
    with routes_held(postgres_url, "child-kill"):
        start_worker(processes, env)  # no beat: nothing sweeps
        wait_for_worker_model(processes)
        wait_until(lambda: waiting_for_a_lock(postgres_url), 30, processes, "the worker's child to wait in its UPDATE")
        [parent] = [child for name, child, _log in processes.children if name == "worker"]
        pool = children_of(parent.pid)
        assert pool, "the worker has no pool child"
        for pid in pool:
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: "was lost (WorkerLostError" in worker_log(processes), 15, processes,
               "the worker to see its batch lost")  # fmt: skip
    check(postgres_url, report, processes, "child-kill")


def test_a_ticket_whose_child_dies_on_its_last_try_ends_failed(
    processes, postgres_url, redis_url, trained_model_dir, tmp_path
):
    from celery import Celery

    # Accepted while the API's broker is unreachable, so no message of attempt 0 exists: the test sends the last.
    down = service_env(postgres_url, f"redis://127.0.0.1:{free_port()}/0", trained_model_dir, tmp_path)
    base = start_api(processes, down)
    report = post_tickets(base, corpus_texts(1), rate=10, prefix="poison", deadline_s=30)
    [ticket_id] = report.accepted.values()
    env = service_env(postgres_url, redis_url, trained_model_dir, tmp_path, SWEEP_AFTER_SECONDS="3600")
    with routes_held(postgres_url, "poison", count=1):
        start_worker(processes, env)
        wait_for_worker_model(processes)
        Celery(broker=redis_url).send_task(CLASSIFY_TASK, args=[ticket_id], kwargs={"attempt": retry.MAX_ATTEMPTS - 1},
                                           queue=CLASSIFY_QUEUE)  # fmt: skip
        wait_until(lambda: waiting_for_a_lock(postgres_url), 30, processes, "the worker's child to wait in its UPDATE")
        [parent] = [child for name, child, _log in processes.children if name == "worker"]
        for pid in children_of(parent.pid):
            os.kill(pid, signal.SIGKILL)
    engine = create_engine(postgres_url)
    try:
        def final() -> tuple[str, str | None]:
            with engine.connect() as connection:
                row = connection.execute(select(Ticket.status, Ticket.last_error).where(Ticket.id == ticket_id)).one()
            return row[0], row[1]

        wait_until(lambda: final()[0] == "failed", 20, processes, "the ticket to end failed")
        assert "WorkerLostError" in (final()[1] or "")
    finally:
        engine.dispose()


def test_a_whole_worker_killed_is_replaced_and_the_new_one_catches_up(
    processes, postgres_url, redis_url, trained_model_dir, tmp_path
):
    env = service_env(postgres_url, redis_url, trained_model_dir, tmp_path,
                      SWEEP_AFTER_SECONDS="5", SWEEP_EVERY_SECONDS="3")  # fmt: skip
    processes.start("beat", [sys.executable, "-m", "celery", "-A", "worker.beat", "beat", "--loglevel", "INFO",
                             "--schedule", str(tmp_path / "celerybeat-schedule")], env)  # fmt: skip
    base = start_api(processes, env)
    report = post_tickets(base, corpus_texts(TICKETS), rate=200, prefix="worker-kill", deadline_s=60)
    with routes_held(postgres_url, "worker-kill"):
        start_worker(processes, env)
        wait_for_worker_model(processes)
        wait_until(lambda: waiting_for_a_lock(postgres_url), 30, processes, "the worker's child to wait in its UPDATE")
        [parent] = [child for name, child, _log in processes.children if name == "worker"]
        os.killpg(parent.pid, signal.SIGKILL)  # the parent and its pool: the whole worker, as an OOM kill
        parent.wait(timeout=10)
    # What compose / systemd / `furiwake run` do: start the same command again.
    processes.start("worker-restarted", [sys.executable, "-m", "celery", "-A", "worker.classify_app", "worker", "-Q",
                                         "classify", "--concurrency", "1", "--loglevel", "INFO"], env)  # fmt: skip
    started = time.monotonic()
    check(postgres_url, report, processes, "worker-kill")
    assert time.monotonic() - started < RECOVERY_S
    assert "routed" in worker_log(processes, "worker-restarted")
