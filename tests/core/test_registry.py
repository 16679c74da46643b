"""The model registry and the retrain's data, on real SQLite and PostgreSQL (no TensorFlow: artifacts are stubs).

One champion enforced by the database; CURRENT kept equal to it; rollback walks back in time; the retrain lease
lets one holder in and outlives a crashed one by a lease period only; the training and evaluation sets are built
as docs/retraining.md says.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from core import model_store, registry
from core.artifacts import current_version, set_current
from core.config import ConfigError, RetrainSettings, Settings
from core.db import make_engine, make_session_factory
from core.orm import Correction, JobLease, ModelVersion, Ticket, utcnow
from tests.support.registry import fake_version, in_unit_of_work
from training.datasets import Dataset, Example

both = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@pytest.fixture
def sessions(request, backend):
    url = request.getfixturevalue(f"{backend}_url")
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def candidate(sessions, model_dir: Path, version: str) -> str:
    fake_version(model_dir, version)
    from core.artifacts import read_meta

    in_unit_of_work(sessions, registry.register_candidate, read_meta(model_dir / version), "cli",
                    {"input_hash": version})
    return version


def champions(sessions, model_dir: Path, count: int) -> None:
    """v0 adopted as the first champion, then v1 … v<count-1> each trained and promoted over the one before."""
    set_current(model_dir, fake_version(model_dir, "v0"))
    in_unit_of_work(sessions, registry.sync, model_dir)
    for number in range(1, count):
        candidate(sessions, model_dir, f"v{number}")
        in_unit_of_work(sessions, registry.promote, model_dir, f"v{number}", "better",
                        expected_champion=f"v{number - 1}")


def champion_v0(sessions, model_dir: Path) -> None:
    """The usual start: a registered champion v0, CURRENT naming it."""
    set_current(model_dir, fake_version(model_dir, "v0"))
    in_unit_of_work(sessions, registry.sync, model_dir)


def statuses(sessions) -> dict[str, str]:
    with sessions() as session:
        return {row.version: row.status for row in registry.versions(session)}


@both
def test_the_database_allows_one_champion_only(sessions):
    with sessions() as session, session.begin():
        session.add(ModelVersion(version="a", status="champion", trigger="initial", train_counts={}, metrics={}))
    with pytest.raises(IntegrityError), sessions() as session, session.begin():
        session.add(ModelVersion(version="b", status="champion", trigger="cli", train_counts={}, metrics={}))
    with sessions() as session, session.begin():  # any number of the other statuses
        for name, status in (("c", "retired"), ("d", "retired"), ("e", "rejected"), ("f", "candidate")):
            session.add(ModelVersion(version=name, status=status, trigger="cli", train_counts={}, metrics={}))
    with pytest.raises(IntegrityError), sessions() as session, session.begin():
        session.execute(update(ModelVersion).where(ModelVersion.version == "c").values(status="champion"))
    assert statuses(sessions)["a"] == "champion"


@both
def test_first_use_registers_current_as_the_initial_champion(sessions, tmp_path):
    model_dir = tmp_path / "models"
    assert in_unit_of_work(sessions, registry.sync, model_dir) is None  # nothing anywhere: nothing to do
    set_current(model_dir, fake_version(model_dir, "v0"))
    assert in_unit_of_work(sessions, registry.sync, model_dir) == "v0"
    with sessions() as session:
        row = registry.champion(session)
    assert row is not None and row.trigger == "initial" and row.promoted_at is not None
    assert row.train_counts["by_route"] == {"Account": 30, "Payment": 30, "Other": 20}
    assert row.train_counts["categories"] == ["Account - Login", "Payment - Refund", "Spam"]  # what agents pick from
    assert row.metrics["validation"]["macro_f1"] == 0.8
    assert in_unit_of_work(sessions, registry.sync, model_dir) == "v0" and len(statuses(sessions)) == 1  # idempotent


@both
def test_sync_adopts_a_hand_trained_current_and_otherwise_the_database_wins(sessions, tmp_path):
    model_dir = tmp_path / "models"
    set_current(model_dir, fake_version(model_dir, "v0"))
    in_unit_of_work(sessions, registry.sync, model_dir)
    set_current(model_dir, fake_version(model_dir, "v1"))  # `furiwake train` made a new version current
    assert in_unit_of_work(sessions, registry.sync, model_dir) == "v1"
    assert statuses(sessions) == {"v0": "retired", "v1": "champion"}
    with sessions() as session:
        assert registry.champion(session).trigger == "cli"  # type: ignore[union-attr]
    set_current(model_dir, "v0")  # a known version, not the champion (say a crash before a commit)
    assert in_unit_of_work(sessions, registry.sync, model_dir) == "v1"
    assert current_version(model_dir) == "v1"
    (model_dir / "CURRENT").unlink()
    assert in_unit_of_work(sessions, registry.sync, model_dir) == "v1" and current_version(model_dir) == "v1"


@both
def test_promote_checks_the_champion_it_was_compared_with(sessions, tmp_path):
    model_dir = tmp_path / "models"
    champion_v0(sessions, model_dir)
    candidate(sessions, model_dir, "v1")
    with pytest.raises(registry.ChampionChanged):
        in_unit_of_work(sessions, registry.promote, model_dir, "v1", "better", expected_champion="someone-else")
    assert current_version(model_dir) == "v0" and statuses(sessions)["v1"] == "candidate"
    promoted = in_unit_of_work(sessions, registry.promote, model_dir, "v1", "better", expected_champion="v0")
    assert promoted == ("v0", "v1")
    assert current_version(model_dir) == "v1"
    assert statuses(sessions) == {"v0": "retired", "v1": "champion"}
    with sessions() as session:
        row = session.get(ModelVersion, "v1")
        assert row is not None and row.previous_champion == "v0" and row.reason == "better"


@both
def test_promotion_needs_the_lease_still_held(sessions, tmp_path):
    model_dir = tmp_path / "models"
    champion_v0(sessions, model_dir)
    candidate(sessions, model_dir, "v1")
    lease = registry.Lease(sessions, registry.RETRAIN_LEASE, 60, holder="stalled")
    assert lease.acquire()
    with sessions() as session, session.begin():  # it expired and another trainer took it over
        session.execute(update(JobLease).where(JobLease.name == registry.RETRAIN_LEASE).values(holder="other"))
    with pytest.raises(registry.RegistryError, match="lease was lost"):
        in_unit_of_work(sessions, registry.promote, model_dir, "v1", "better", expected_champion="v0", lease=lease)
    assert current_version(model_dir) == "v0"


@both
def test_rollback_walks_back_through_the_champions_and_to_any_version(sessions, tmp_path):
    model_dir = tmp_path / "models"
    champions(sessions, model_dir, 3)
    assert in_unit_of_work(sessions, registry.rollback, model_dir) == ("v2", "v1")
    assert current_version(model_dir) == "v1"
    assert in_unit_of_work(sessions, registry.rollback, model_dir) == ("v1", "v0")  # further back, not back to v2
    assert current_version(model_dir) == "v0"
    with pytest.raises(registry.RegistryError, match="--to"):
        in_unit_of_work(sessions, registry.rollback, model_dir)
    assert in_unit_of_work(sessions, registry.rollback, model_dir, to="v2", actor="hana@example.jp") == ("v0", "v2")
    assert statuses(sessions) == {"v0": "retired", "v1": "retired", "v2": "champion"}
    with sessions() as session:
        reason = session.get(ModelVersion, "v2").reason  # type: ignore[union-attr]
    assert "made champion again by hana@example.jp" in reason
    with pytest.raises(registry.RegistryError, match="already the champion"):
        in_unit_of_work(sessions, registry.rollback, model_dir, to="v2")
    with pytest.raises(registry.RegistryError, match="not a registered version"):
        in_unit_of_work(sessions, registry.rollback, model_dir, to="nope")
    assert current_version(model_dir) == "v2"


@both
def test_prune_keeps_the_champion_candidates_and_the_newest_others(sessions, tmp_path):
    model_dir = tmp_path / "models"
    champions(sessions, model_dir, 4)
    in_unit_of_work(sessions, registry.reject, candidate(sessions, model_dir, "r4"), "worse")
    candidate(sessions, model_dir, "c5")  # still being evaluated by a running retrain
    (model_dir / "stray").mkdir()  # not the registry's: left alone
    # Newest first among the others: r4, v2, v1, v0.
    assert in_unit_of_work(sessions, registry.prune, model_dir, keep=2, dry_run=True) == ["v1", "v0"]
    assert (model_dir / "v0").is_dir()
    assert in_unit_of_work(sessions, registry.prune, model_dir, keep=2) == ["v1", "v0"]
    assert sorted(p.name for p in model_dir.iterdir() if p.is_dir()) == ["c5", "r4", "stray", "v2", "v3"]
    assert statuses(sessions)["v1"] == "retired"  # the row, its figures and its history stay
    with sessions() as session:
        assert "model files pruned" in (session.get(ModelVersion, "v1").reason or "")  # type: ignore[union-attr]
    with pytest.raises(registry.RegistryError, match="no model files any more"):
        in_unit_of_work(sessions, registry.rollback, model_dir, to="v1")
    assert in_unit_of_work(sessions, registry.prune, model_dir, keep=2) == []
    assert in_unit_of_work(sessions, registry.prune, model_dir, keep=0) == ["r4", "v2"]
    assert current_version(model_dir) == "v3" and (model_dir / "v3" / "model.keras").is_file()
    with pytest.raises(registry.RegistryError, match="negative"):
        in_unit_of_work(sessions, registry.prune, model_dir, keep=-1)


def test_model_prune_cli(sqlite_url, tmp_path):
    import os
    import subprocess
    import sys

    model_dir = tmp_path / "models"
    engine = make_engine(sqlite_url)
    sessions = make_session_factory(engine)
    set_current(model_dir, fake_version(model_dir, "v0"))
    in_unit_of_work(sessions, registry.sync, model_dir)
    for version in ("v1", "v2"):
        in_unit_of_work(sessions, registry.reject, candidate(sessions, model_dir, version), "worse")
    engine.dispose()
    env = {**os.environ, "FURIWAKE_HOME": str(tmp_path), "MODEL_DIR": str(model_dir), "DATABASE_URL": sqlite_url}

    def prune(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", "model", "prune", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    result = prune("--keep", "1", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"pruned": ["v1"], "dry_run": True, "kept": 1}
    assert (model_dir / "v1").is_dir()
    result = prune("--keep", "1")
    assert result.returncode == 0 and "deleted the files of 1 versions" in result.stdout and "v1" in result.stdout
    assert sorted(p.name for p in model_dir.iterdir() if p.is_dir()) == ["v0", "v2"]
    result = prune("--keep", "-3")
    assert result.returncode == 1 and "negative" in result.stderr and "Traceback" not in result.stderr


@both
def test_lease_one_holder_at_a_time_and_a_crashed_holder_expires(sessions):
    first = registry.Lease(sessions, registry.RETRAIN_LEASE, 60, holder="first")
    second = registry.Lease(sessions, registry.RETRAIN_LEASE, 60, holder="second")
    assert first.acquire() and not second.acquire()
    with sessions() as session:
        state = registry.lease_state(session)
    assert state is not None and state.holder == "first"
    first.release()
    assert second.acquire()
    # "second" crashes without releasing: nobody gets in until its lease expires
    assert not first.acquire()
    with sessions() as session, session.begin():
        session.execute(update(JobLease).where(JobLease.name == registry.RETRAIN_LEASE)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    with sessions() as session:
        assert registry.lease_state(session) is None
    assert first.acquire()
    assert not second.renew()  # the crashed holder cannot come back and think it still holds it
    first.release()


@both
def test_racing_acquirers_get_exactly_one_lease(sessions):
    barrier = threading.Barrier(6)
    won: list[str] = []

    def race(name: str) -> None:
        lease = registry.Lease(sessions, "race", 60, holder=name)
        barrier.wait()
        if lease.acquire():
            won.append(name)

    threads = [threading.Thread(target=race, args=(f"t{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


@both
def test_a_kept_alive_lease_outlives_its_period(sessions):
    lease = registry.Lease(sessions, registry.RETRAIN_LEASE, 1.0, holder="busy")
    assert lease.acquire()
    with lease.kept_alive():
        time.sleep(1.8)
        assert not registry.Lease(sessions, registry.RETRAIN_LEASE, 1.0, holder="other").acquire()
    assert not lease.lost
    lease.release()


@both
def test_override_rate_counts_re_routes_not_confirmations(sessions):
    with sessions() as session, session.begin():
        tickets = [Ticket(channel="api", body=f"t{i}", status="routed", route="Other", model_version="v1")
                   for i in range(4)] + [Ticket(channel="api", body="x", status="routed", route="Account",
                                                model_version="v2")]
        session.add_all(tickets)
        session.flush()
        session.add(Correction(ticket_id=tickets[0].id, predicted_route="Other", corrected_route="Payment"))
        session.add(Correction(ticket_id=tickets[0].id, predicted_route="Other", corrected_route="Account"))
        session.add(Correction(ticket_id=tickets[1].id, predicted_route="Other", corrected_route="Other"))
    with sessions() as session:
        rates = registry.override_rates(session)
    assert rates["v1"].routed == 4 and rates["v1"].corrected == 1 and rates["v1"].rate == 0.25
    assert rates["v2"].rate == 0.0


# --- the retrain's data -------------------------------------------------------------------------------------------

def _corpus(n_per_route: int = 30) -> Dataset:
    return Dataset([Example(f"{route} corpus text number {i}", route, f"{route} - Cat", f"c:{i}")
                    for route in ("Account", "Payment", "Other") for i in range(n_per_route)])


def _ticket(session, body: str, route: str, status: str = "routed") -> Ticket:
    ticket = Ticket(channel="api", body=body, status=status, route=route, model_version="v1",
                    score_account=0.1, score_payment=0.1, score_other=0.8)
    session.add(ticket)
    session.flush()
    return ticket


@both
def test_training_and_evaluation_sets(sessions, make_settings):
    from training.retrain import CORRECTION, RESOLVED, build_data, corpus_split, holdout_bucket

    corpus = _corpus()
    settings = make_settings(retrain=RetrainSettings(holdout_percent=50, eval_corrections=3))
    with sessions() as session, session.begin():
        corrected = [_ticket(session, f"corrected ticket {i}", "Other") for i in range(12)]
        for i, ticket in enumerate(corrected):
            session.add(Correction(ticket_id=ticket.id, predicted_route="Other", corrected_route="Payment",
                                   created_at=utcnow() - timedelta(minutes=60 - i)))
        # a later change of mind wins
        session.add(Correction(ticket_id=corrected[0].id, predicted_route="Other", corrected_route="Account",
                               created_at=utcnow()))
        # an agent corrects a text the corpus labels otherwise: the correction wins
        clash = _ticket(session, "Other corpus text number 1", "Other")
        session.add(Correction(ticket_id=clash.id, predicted_route="Other", corrected_route="Account"))
        _ticket(session, "resolved and never corrected", "Payment", status="resolved")
        both_ways = _ticket(session, "resolved after a correction", "Other", status="resolved")
        session.add(Correction(ticket_id=both_ways.id, predicted_route="Other", corrected_route="Payment"))
        _ticket(session, "still open, not a label", "Other")
    with sessions() as session:
        data = build_data(session, settings, corpus)

    held = {str(t.id) for t in [*corrected, clash, both_ways] if holdout_bucket(str(t.id)) < 50}
    trained = {e.source.split(":", 1)[1] for e in data.train.examples if e.origin == CORRECTION}
    assert trained.isdisjoint(held) and trained  # held-out tickets never train
    eval_corrections = [t for t, p in zip(data.eval_texts, data.eval_parts, strict=True) if p == "corrections"]
    assert 0 < len(eval_corrections) <= 3
    assert set(data.eval_texts).isdisjoint(e.text for e in data.train.examples)
    labels = {e.text: e.route for e in data.train.examples}
    assert labels.get("resolved and never corrected") == "Payment"
    assert [e.origin for e in data.train.examples if e.text == "resolved and never corrected"] == [RESOLVED]
    assert "still open, not a label" not in labels
    if str(corrected[0].id) not in held:
        assert labels["corrected ticket 0"] == "Account"
    if str(clash.id) not in held:
        assert labels["Other corpus text number 1"] == "Account"
    if str(both_ways.id) not in held:
        assert labels["resolved after a correction"] == "Payment"
    # the corpus part of the evaluation set is train()'s own validation split of the corpus
    _, corpus_eval = corpus_split(corpus)
    assert {t for t, p in zip(data.eval_texts, data.eval_parts, strict=True) if p == "corpus"} <= set(corpus_eval.texts)
    assert len(corpus_eval) == 18
    assert data.by_source["resolved"] == 1 and data.weights[CORRECTION] == settings.retrain.weight_correction


def test_holdout_is_fixed_per_ticket():
    from training.retrain import holdout_bucket

    ids = [str(uuid.UUID(int=i)) for i in range(2000)]
    assert [holdout_bucket(i) for i in ids] == [holdout_bucket(i) for i in ids]
    share = sum(holdout_bucket(i) < 20 for i in ids) / len(ids)
    assert 0.15 < share < 0.25


@both
def test_retrain_is_skipped_while_another_holds_the_lease(sessions, make_settings, request, backend):
    from core.runtime import Runtime
    from training.retrain import retrain

    other = registry.Lease(sessions, registry.RETRAIN_LEASE, 600, holder="trainer@elsewhere")
    assert other.acquire()
    runtime = Runtime.build(make_settings(database_url=request.getfixturevalue(f"{backend}_url")))
    try:
        outcome = retrain(runtime, trigger="button")
    finally:
        runtime.dispose()
    assert outcome.decision == "skipped" and "trainer@elsewhere" in outcome.reason
    assert outcome.version is None


@both
def test_a_champion_change_rolled_back_puts_current_back(sessions, tmp_path):
    """CURRENT is written inside the caller's unit of work; if that unit of work does not commit (an error after
    the promotion), the file names the old champion again and the database still does too."""
    model_dir = tmp_path / "models"
    champion_v0(sessions, model_dir)
    candidate(sessions, model_dir, "v1")
    with pytest.raises(RuntimeError, match="after the promotion"), sessions.begin() as session:
        assert registry.promote(session, model_dir, "v1", "better", expected_champion="v0") == ("v0", "v1")
        assert current_version(model_dir) == "v1"  # written while the registry row is locked
        raise RuntimeError("something failed after the promotion")
    assert current_version(model_dir) == "v0"
    assert statuses(sessions) == {"v0": "champion", "v1": "candidate"}
    assert in_unit_of_work(sessions, registry.promote, model_dir, "v1", "better", expected_champion="v0") == (
        "v0", "v1")
    assert current_version(model_dir) == "v1"


@both
def test_a_refused_sync_leaves_nothing_in_the_callers_transaction(sessions, tmp_path):
    """sync() undoes its own savepoint when the change cannot be made, so the caller may go on and commit."""
    model_dir = tmp_path / "models"
    set_current(model_dir, fake_version(model_dir, "v0"))
    in_unit_of_work(sessions, registry.sync, model_dir)
    # The champion's files are gone, here and from the database: CURRENT cannot be rewritten (with the database's
    # copy, sync() would fetch them again: tests/core/test_model_store.py).
    (model_dir / "v0" / "model.keras").unlink()
    in_unit_of_work(sessions, model_store.remove, "v0")
    (model_dir / "CURRENT").unlink()
    with sessions.begin() as session:
        assert registry.sync(session, model_dir) == "v0"
        session.add(ModelVersion(version="other", status="retired", trigger="cli", train_counts={}, metrics={}))
    assert statuses(sessions) == {"v0": "champion", "other": "retired"}
    assert current_version(model_dir) is None


def test_decision_needs_the_margin_and_no_forgetting():
    from training.retrain import decide

    def figures(overall: float, corpus: float) -> dict:
        return {"macro_f1": overall, "parts": {"corpus": {"macro_f1": corpus}}}

    champion = figures(0.80, 0.85)
    assert decide(figures(0.81, 0.85), champion, "v1", 0.005, 0.03)[0] == "promoted"
    decision, reason = decide(figures(0.804, 0.86), champion, "v1", 0.005, 0.03)
    assert decision == "rejected" and "0.8040 vs 0.8000" in reason and "needed > +0.005" in reason
    assert decide(figures(0.79, 0.85), champion, "v1", -1.0, 0.03)[0] == "promoted"  # margin -1: always
    # a big gain on the agents' corrections does not buy forgetting the corpus
    decision, reason = decide(figures(0.86, 0.81), champion, "v1", 0.005, 0.03)
    assert decision == "rejected" and "loses 0.0400 macro-F1 on the corpus part" in reason
    assert decide(figures(0.86, 0.83), champion, "v1", 0.005, 0.03)[0] == "promoted"
    assert decide(figures(0.10, 0.10), None, None, 0.005, 0.03)[0] == "promoted"  # nothing to compare with


# --- configuration and schedule -------------------------------------------------------------------------------

def test_retrain_settings_from_the_environment():
    settings = Settings.from_env({"RETRAIN_SCHEDULE": "30 2 * * 1-5", "RETRAIN_MIN_GAIN": "0.01",
                                  "RETRAIN_WEIGHT_CORRECTION": "3", "RETRAIN_HOLDOUT_PERCENT": "10",
                                  "RETRAIN_MAX_CORPUS_DROP": "0.05", "RETRAIN_KEEP_VERSIONS": "3",
                                  "RETRAIN_TARGET_PRECISION": "0.95"})
    assert settings.retrain.schedule == "30 2 * * 1-5" and settings.retrain.min_gain == 0.01
    assert settings.retrain.weight_correction == 3.0 and settings.retrain.holdout_percent == 10
    assert settings.retrain.max_corpus_drop == 0.05 and settings.retrain.keep_versions == 3
    assert settings.retrain.target_precision == 0.95
    assert Settings.from_env({}).retrain == RetrainSettings()
    for env, name in (({"RETRAIN_SCHEDULE": "nightly"}, "RETRAIN_SCHEDULE"),
                      ({"RETRAIN_MIN_GAIN": "lots"}, "RETRAIN_MIN_GAIN"),
                      ({"RETRAIN_WEIGHT_RESOLVED": "-1"}, "RETRAIN_WEIGHT_RESOLVED"),
                      ({"RETRAIN_HOLDOUT_PERCENT": "95"}, "RETRAIN_HOLDOUT_PERCENT"),
                      ({"RETRAIN_KEEP_VERSIONS": "-1"}, "RETRAIN_KEEP_VERSIONS"),
                      ({"RETRAIN_TARGET_PRECISION": "1"}, "RETRAIN_TARGET_PRECISION")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env(env)


def test_beat_runs_the_retrain_nightly_on_the_training_queue():
    from core.messaging import RETRAIN_TASK, TRAINING_QUEUE, make_celery

    app = make_celery(Settings.from_env({"BROKER_URL": "redis://127.0.0.1:6390/0"}))
    entry = app.conf.beat_schedule["retrain-nightly"]
    assert entry["task"] == RETRAIN_TASK and entry["options"]["queue"] == TRAINING_QUEUE
    assert entry["kwargs"] == {"trigger": "schedule"}
    assert app.conf.timezone == "Asia/Tokyo"
    schedule = entry["schedule"]
    assert schedule.hour == {3} and schedule.minute == {0}
    assert app.conf.task_routes[RETRAIN_TASK] == {"queue": TRAINING_QUEUE}
    assert "sweep-stale-tickets" in app.conf.beat_schedule
    off = make_celery(Settings.from_env({"BROKER_URL": "redis://127.0.0.1:6390/0", "RETRAIN_SCHEDULE": "off"}))
    assert "retrain-nightly" not in off.conf.beat_schedule
