"""core.metrics in one process (the default registry): each function moves its metric, and counts wait for the
commit of a real SQLite transaction (a rollback, a savepoint or a closed session counts nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core import metrics
from core.config import ConfigError, Settings
from core.db import make_engine, make_session_factory
from core.orm import utcnow
from core.tickets import NewTicket, create_ticket, store_queued


def value(name: str, **labels: str) -> float:
    """The sample's current value; 0 before it first exists (counters are created on first use)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def sessions(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_ticket_received_counts_per_channel() -> None:
    before_api, before_web = value("furiwake_tickets_received_total", channel="api"), \
        value("furiwake_tickets_received_total", channel="web")
    metrics.ticket_received("api")
    metrics.ticket_received("api")
    assert value("furiwake_tickets_received_total", channel="api") == before_api + 2
    assert value("furiwake_tickets_received_total", channel="web") == before_web


def test_ticket_routed_moves_the_counter_and_both_histograms() -> None:
    labels = {"status": "needs_review", "route": "Payment", "model_version": "v-test-routed"}
    before = value("furiwake_tickets_routed_total", **labels)
    latency_count = value("furiwake_routing_latency_seconds_count")
    latency_sum = value("furiwake_routing_latency_seconds_sum")
    held = value("furiwake_tickets_held_for_review_total", reason="low_confidence")
    metrics.ticket_routed("needs_review", "Payment", "v-test-routed", 0.42, utcnow() - timedelta(seconds=3),
                          "low_confidence")
    assert value("furiwake_tickets_routed_total", **labels) == before + 1
    assert value("furiwake_tickets_held_for_review_total", reason="low_confidence") == held + 1
    assert value("furiwake_routing_confidence_count", model_version="v-test-routed") == 1
    assert value("furiwake_routing_confidence_bucket", model_version="v-test-routed", le="0.4") == 0
    assert value("furiwake_routing_confidence_bucket", model_version="v-test-routed", le="0.5") == 1
    assert value("furiwake_routing_latency_seconds_count") == latency_count + 1
    assert 3.0 <= value("furiwake_routing_latency_seconds_sum") - latency_sum < 60.0
    metrics.ticket_routed("routed", "Payment", "v-test-routed", 0.97, None)  # routed: no reason, nothing held
    assert value("furiwake_tickets_held_for_review_total", reason="low_confidence") == held + 1


def test_the_small_counters() -> None:
    sweep, intake = value("furiwake_sweep_requeued_total"), value("furiwake_rate_limited_total", scope="intake")
    override = {"from_route": "Account", "to_route": "Other", "model_version": "v-test-override"}
    overrides = value("furiwake_route_overrides_total", **override)
    metrics.sweep_requeued(7)
    metrics.rate_limited("intake")
    metrics.route_overridden("Account", "Other", "v-test-override")
    assert value("furiwake_sweep_requeued_total") == sweep + 7
    assert value("furiwake_rate_limited_total", scope="intake") == intake + 1
    assert value("furiwake_route_overrides_total", **override) == overrides + 1


def test_worker_model_names_only_the_version_served() -> None:
    metrics.worker_model("v-test-old")
    assert value("furiwake_worker_model_processes", version="v-test-old") == 1
    metrics.worker_model("v-test-new", previous="v-test-old")
    assert value("furiwake_worker_model_processes", version="v-test-old") == 0
    assert value("furiwake_worker_model_processes", version="v-test-new") == 1


def test_on_commit_counts_only_what_was_committed(sessions: sessionmaker[Session]) -> None:
    counted: list[str] = []
    with sessions() as session:
        with session.begin():
            metrics.on_commit(session, lambda: counted.append("committed"))
            with session.begin_nested():  # a savepoint released is no commit yet
                metrics.on_commit(session, lambda: counted.append("savepoint"))
            assert counted == []
        assert counted == ["committed", "savepoint"]

        with pytest.raises(RuntimeError), session.begin():
            session.execute(text("SELECT 1"))
            metrics.on_commit(session, lambda: counted.append("rolled back"))
            raise RuntimeError("the unit of work fails")
        session.execute(text("SELECT 1"))
        metrics.on_commit(session, lambda: counted.append("closed"))
    with sessions() as session, session.begin():
        session.execute(text("SELECT 1"))
    assert counted == ["committed", "savepoint"]


def test_a_stored_ticket_counts_once_and_a_repeat_not_at_all(sessions: sessionmaker[Session]) -> None:
    before = value("furiwake_tickets_received_total", channel="email")
    mail = NewTicket(channel="email", body="カードの請求が二重です", message_id="<metrics-1@example.jp>")
    for _ in range(2):  # a mail server's redelivery: the same ticket
        with sessions() as session, session.begin():
            store_queued(session, mail)
    with sessions() as session, session.begin():
        store_queued(session, NewTicket(channel="email", body="パスワードを忘れました"))
    with pytest.raises(RuntimeError), sessions() as session, session.begin():
        create_ticket(session, NewTicket(channel="email", body="never committed"))
        raise RuntimeError("rolled back")
    assert value("furiwake_tickets_received_total", channel="email") == before + 2


def test_the_multiprocess_directory_must_exist(tmp_path: Path) -> None:
    env = {"FURIWAKE_HOME": str(tmp_path)}
    assert Settings.from_env(env).metrics_dir is None
    assert Settings.from_env({**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}).metrics_dir == tmp_path.resolve()
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        Settings.from_env({**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")})


def test_a_failing_count_never_fails_the_committed_work(sessions: sessionmaker[Session]) -> None:
    counted: list[str] = []

    def broken() -> None:
        raise ValueError("a label the metric does not know")

    with sessions() as session, session.begin():
        session.execute(text("SELECT 1"))
        metrics.on_commit(session, broken)
        metrics.on_commit(session, lambda: counted.append("after the broken one"))
    assert counted == ["after the broken one"]


def test_the_workers_writes_count_once_committed(sessions: sessionmaker[Session]) -> None:
    """worker.routing's write (no model needed: a plan as plan_routes makes it) and the sweep's re-enqueue."""
    from worker.routing import RoutingOutcome, RoutingPlan, mark_queued, write_routes

    with sessions() as session, session.begin():
        ticket, _ = create_ticket(session, NewTicket(channel="api", body="ログインできません"))
    plan = RoutingPlan(RoutingOutcome(routed=[str(ticket.id)]), "v-test-write", received_at=[ticket.created_at])
    plan.params.append({"b_id": ticket.id, "b_status": "routed", "b_route": "Account", "b_confidence": 0.93,
                        "b_account": 0.93, "b_payment": 0.05, "b_other": 0.02})
    routed = {"status": "routed", "route": "Account", "model_version": "v-test-write"}
    sweep = value("furiwake_sweep_requeued_total")

    with pytest.raises(RuntimeError), sessions() as session, session.begin():
        mark_queued(session, [str(ticket.id)])
        write_routes(session, plan)
        raise RuntimeError("the batch's unit of work fails: retried later, counted then")
    assert value("furiwake_tickets_routed_total", **routed) == 0
    assert value("furiwake_sweep_requeued_total") == sweep

    with sessions() as session, session.begin():
        mark_queued(session, [str(ticket.id)])
    with sessions() as session, session.begin():
        write_routes(session, plan)
    assert value("furiwake_sweep_requeued_total") == sweep + 1
    assert value("furiwake_tickets_routed_total", **routed) == 1
    assert value("furiwake_routing_confidence_bucket", model_version="v-test-write", le="0.95") == 1


def test_furiwake_run_gives_its_children_an_emptied_directory(tmp_path: Path) -> None:
    from cli.supervisor import commands, metrics_env

    settings = Settings.from_env({"FURIWAKE_HOME": str(tmp_path)})
    directory = tmp_path / "var" / "metrics"
    env = metrics_env(settings)  # the default place, created
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(directory) and directory.is_dir()
    (directory / "counter_4242.db").write_bytes(b"a previous run's")
    (directory / "notes.txt").write_text("not ours")
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    env = metrics_env(Settings.from_env({"FURIWAKE_HOME": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(chosen)}))
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(chosen)
    metrics_env(settings)
    assert sorted(path.name for path in directory.iterdir()) == ["notes.txt"]
    assert "python:api.gunicorn_conf" in commands(settings)["api"]
