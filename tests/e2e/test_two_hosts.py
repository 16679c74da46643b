"""Two worker "hosts" over one PostgreSQL and one Redis: separate Celery worker processes, each with its own empty
MODEL_DIR and home directory, as on two machines. The models reach them through the database only.

A version registered and promoted on a third "machine" (the trainer's MODEL_DIR, this test process) is fetched and
served by both hosts; a rollback reaches both the same way; a pruned version leaves both caches. Each host consumes
a queue of its own, so the test knows which host routed which ticket.

The two versions are one tiny trained model (tests/support/retrain.py) saved under two version names (meta.json's
`version` differs, the weights do not): what is under test is which version each host serves, not its quality.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from celery import Celery

from core import registry
from core.artifacts import read_meta, write_meta
from core.db import make_engine, make_session_factory
from core.messaging import CLASSIFY_TASK
from core.orm import Ticket
from core.tickets import NewTicket, store_queued
from tests.support import retrain as support
from tests.support.processes import Processes, service_env, wait_until
from tests.support.registry import in_unit_of_work
from worker.current_model import RELOAD_CHECK_SECONDS

HOSTS = ("host-a", "host-b")
BODIES = ["パスワードを忘れてログインできません", "二重に請求されています", "注文した商品がまだ届きません。"]
SWITCH_WITHIN = 120.0  # s for a switch or a prune to reach a host: checked every 2-10 s, but loading and
# compiling a model took 25-30 s on a loaded 2-core machine (6 s idle); the bound is for "never", not for speed


def start_host(processes: Processes, name: str, database_url: str, broker_url: str, root: Path) -> Path:
    model_dir, home = root / name / "models", root / name / "home"
    home.mkdir(parents=True)
    env = service_env(database_url, broker_url, model_dir, home, CLASSIFY_BATCH_WAIT_MS="50")
    processes.start(name, [sys.executable, "-m", "celery", "-A", "worker.classify_app", "worker", "-Q", name,
                           "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--concurrency", "1", "--loglevel", "INFO"],
                    env)
    return model_dir


def log_of(processes: Processes, name: str) -> str:
    [log] = [log for child_name, _child, log in processes.children if child_name == name]
    return log.read_text(errors="replace")


def test_a_model_promoted_on_one_machine_is_served_rolled_back_and_pruned_on_every_host(
    postgres_url, redis_url, processes, tmp_path
):  # `processes` after the database: its workers stop before the database is dropped
    engine = make_engine(postgres_url)
    sessions = make_session_factory(engine)
    broker = Celery(broker=redis_url)
    trainer_dir = tmp_path / "trainer" / "models"
    v1 = support.champion_into(trainer_dir)
    v2 = f"{v1}-twin"
    shutil.copytree(trainer_dir / v1, trainer_dir / v2)
    write_meta(trainer_dir / v2, replace(read_meta(trainer_dir / v1), version=v2))

    def route(hosts: tuple[str, ...] = HOSTS) -> dict[str, str | None]:
        """One ticket routed by each host, all sent at once; the version that routed each, by host."""
        sent = {}
        for host in hosts:
            with sessions.begin() as session:
                ticket, _ = store_queued(session, NewTicket(channel="api", body=BODIES[len(sent) % len(BODIES)]))
                sent[host] = ticket.id
            broker.send_task(CLASSIFY_TASK, args=[str(sent[host])], queue=host)
        routed: dict[str, str | None] = {}

        def done() -> bool:
            with sessions() as session:
                for host, ticket_id in sent.items():
                    row = session.get(Ticket, ticket_id)
                    if row is not None and row.status in ("routed", "needs_review"):
                        routed[host] = row.model_version
            return len(routed) == len(sent)

        wait_until(done, 90, processes, f"a ticket routed by each of {', '.join(hosts)}")
        return routed

    def served_everywhere(version: str) -> None:
        """Every host routes with `version` within SWITCH_WITHIN, then keeps doing so for a few tickets."""
        time.sleep(RELOAD_CHECK_SECONDS)  # every host's next check is due: they switch side by side
        deadline = time.monotonic() + SWITCH_WITHIN
        late = list(HOSTS)
        while late:
            late = [host for host, routed_by in route(tuple(late)).items() if routed_by != version]
            assert time.monotonic() < deadline or not late, f"{late} still not serving {version}\n{processes.logs()}"
        for _ in range(3):
            assert route() == dict.fromkeys(HOSTS, version)

    try:
        in_unit_of_work(sessions, registry.register_candidate, read_meta(trainer_dir / v1), "cli", {},
                        trainer_dir / v1)
        in_unit_of_work(sessions, registry.promote, trainer_dir, v1, "the first model", expected_champion=None)
        in_unit_of_work(sessions, registry.register_candidate, read_meta(trainer_dir / v2), "cli", {},
                        trainer_dir / v2)
        caches = {host: start_host(processes, host, postgres_url, redis_url, tmp_path) for host in HOSTS}
        assert not any(cache.exists() and any(cache.iterdir()) for cache in caches.values())

        # 1. Empty machines serve the champion, fetched from the database.
        served_everywhere(v1)
        for host, cache in caches.items():
            assert f"fetched model {v1} from the database" in log_of(processes, host)
            assert (cache / v1 / "model.keras").read_bytes() == (trainer_dir / v1 / "model.keras").read_bytes()

        # 2. A promotion made on the trainer's machine reaches both.
        in_unit_of_work(sessions, registry.promote, trainer_dir, v2, "better", expected_champion=v1)
        served_everywhere(v2)

        # 3. So does a rollback.
        assert in_unit_of_work(sessions, registry.rollback, trainer_dir) == (v2, v1)
        served_everywhere(v1)
        assert all((cache / v2).is_dir() for cache in caches.values())  # a rollback target stays cached

        # 4. A pruned version leaves every cache (each host looks at its next batch, every 10 s at most).
        assert in_unit_of_work(sessions, registry.prune, trainer_dir, keep=0) == [v2]
        assert not (trainer_dir / v2).exists()
        deadline = time.monotonic() + SWITCH_WITHIN
        while any((cache / v2).exists() for cache in caches.values()):
            assert time.monotonic() < deadline, f"a host still caches the pruned {v2}\n{processes.logs()}"
            assert route() == dict.fromkeys(HOSTS, v1)
            time.sleep(1)
        assert all((cache / v1 / "model.keras").is_file() for cache in caches.values())  # never the one served
        for host in HOSTS:
            assert "Traceback" not in log_of(processes, host), log_of(processes, host)[-3000:]
    finally:
        broker.close()
        engine.dispose()

