"""Real retrains (tiny: a 400-ticket slice, a few epochs) against real databases.

Corrections injected (route and fine category) → retrain → the challenger learnt them → promoted; a deliberately
worse challenger is
rejected (after a crashed trainer's lease expired); two retrains started at once → one runs, the other is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update

from core import registry
from core.artifacts import current_version
from core.db import make_engine, make_session_factory
from core.orm import Correction, JobLease, ModelVersion, utcnow
from core.runtime import Runtime
from tests.support import retrain as support

pytestmark = pytest.mark.slow
both = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@pytest.fixture
def database_url(request, backend):
    return request.getfixturevalue(f"{backend}_url")


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def runtime(settings):
    built = Runtime.build(settings)
    yield built
    built.dispose()


@pytest.fixture
def settings(make_settings, database_url):
    # The tiny slice's corpus part is 80 rows (one ticket = 1.25 points): too few for the forgetting guard
    # (RETRAIN_MAX_CORPUS_DROP, tested in test_registry.py) to mean anything here.
    built = make_settings(database_url=database_url)
    return replace(built, retrain=replace(built.retrain, corpus=support.tiny_corpus(), max_corpus_drop=1.0))


PREMIUM = "Account - Premium"  # a fine category the corpus does not have: only the agents teach it


def _routes(model_dir, version, texts):
    from serving.predictor import Predictor

    return [p.route for p in Predictor(model_dir / version, warm_up=False).predict(texts)]


def _categories(model_dir, version, texts):
    from serving.predictor import Predictor

    return [p.category for p in Predictor(model_dir / version, warm_up=False).predict(texts)]


@both
def test_corrections_are_learnt_and_the_challenger_is_promoted(settings, sessions, runtime):
    from training.retrain import holdout_bucket, load_corpus, retrain

    v1 = support.champion_into(settings.model_dir)
    # 250 corrections: enough held-out ones (~50) that what they teach outweighs a tiny model's noise on the corpus.
    texts = support.drift_texts(250)
    ids = support.add_corrections(sessions, texts, v1)
    with sessions() as session, session.begin():  # the agents named the fine category too
        session.execute(update(Correction).values(corrected_category=PREMIUM))

    outcome = retrain(runtime, trigger="cli", options=support.train_options())

    assert outcome.decision == "promoted", outcome.reason
    v2 = outcome.version
    assert v2 and v2 != v1 and outcome.champion_version == v1 and outcome.champion_after == v2
    assert outcome.candidate_macro_f1 > outcome.champion_macro_f1 + settings.retrain.min_gain  # type: ignore[operator]
    assert current_version(settings.model_dir) == v2  # what the workers follow
    with sessions() as session:
        rows = {row.version: row for row in registry.versions(session)}
    assert (rows[v1].status, rows[v1].trigger, rows[v2].status, rows[v2].trigger) == (
        "retired", "initial", "champion", "cli")
    assert rows[v2].previous_champion == v1 and rows[v2].compared_with == v1
    assert rows[v2].macro_f1 == outcome.candidate_macro_f1 and rows[v2].reason.startswith("promoted: macro-F1")
    evaluation = rows[v2].metrics["evaluation"]
    assert evaluation["eval_set"]["corrections"] > 0 and evaluation["eval_set"]["corpus"] > 0
    assert evaluation["candidate"]["parts"]["corrections"]["accuracy"] > (
        evaluation["champion"]["parts"]["corrections"]["accuracy"])
    assert rows[v2].train_counts["by_source"]["corrections"] > 50
    categories = rows[v2].train_counts["categories"]  # what the API lists, without reading meta.json
    corpus_labels = len(load_corpus(settings).category_labels())  # the corpus's own, and the agents' new one
    assert PREMIUM in categories and categories == sorted(categories) and len(categories) == corpus_labels + 1
    assert evaluation["candidate"]["category"]["n"] == evaluation["eval_set"]["n"]  # every row has a fine label
    assert evaluation["candidate"]["category"]["accuracy"] > evaluation["champion"]["category"]["accuracy"]
    assert (settings.model_dir / v2 / "evaluation.png").is_file()

    # The corrected examples it trained on, which the old model routed elsewhere, now route the corrected way.
    trained = [t for t, i in zip(texts, ids, strict=True) if holdout_bucket(str(i)) >= settings.retrain.holdout_percent]
    missed_before = [t for t, r in zip(trained, _routes(settings.model_dir, v1, trained), strict=True)
                     if r != "Account"]
    assert len(missed_before) >= 5
    now = _routes(settings.model_dir, v2, missed_before)
    assert now.count("Account") >= 0.9 * len(missed_before), now
    # ... and so do new tickets of the same kind, never seen by either model.
    fresh = support.drift_texts(20, offset=250)
    assert _routes(settings.model_dir, v2, fresh).count("Account") > _routes(settings.model_dir, v1, fresh).count(
        "Account")
    # ... and get the agents' new fine category, which the old model cannot even name.
    assert PREMIUM not in _categories(settings.model_dir, v1, fresh)
    assert _categories(settings.model_dir, v2, fresh).count(PREMIUM) >= len(fresh) // 2

    again = retrain(runtime, trigger="schedule", options=support.train_options())
    assert again.decision == "unchanged" and v2 in again.reason
    assert current_version(settings.model_dir) == v2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_worse_challenger_is_rejected_even_after_a_crashed_trainer(settings, sessions, runtime):
    from training.retrain import retrain

    v1 = support.champion_into(settings.model_dir)
    support.add_corrections(sessions, support.drift_texts(30), v1)
    crashed = registry.Lease(sessions, registry.RETRAIN_LEASE, 600, holder="trainer-that-crashed")
    assert crashed.acquire()
    assert retrain(runtime, trigger="cli", options=support.train_options()).decision == "skipped"
    with sessions() as session, session.begin():  # one lease period later
        session.execute(update(JobLease).where(JobLease.name == registry.RETRAIN_LEASE)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))

    # One epoch at a learning rate far too small, served without the linear arm (which would rescue it): a
    # challenger that has learnt next to nothing.
    from training.model import ModelConfig

    outcome = retrain(runtime, trigger="button",
                      options=support.train_options(epochs=1, learning_rate=1e-6, model=ModelConfig(linear=False)))

    assert outcome.decision == "rejected", outcome.reason
    assert outcome.candidate_macro_f1 < outcome.champion_macro_f1  # type: ignore[operator]
    assert current_version(settings.model_dir) == v1
    with sessions() as session:
        row = session.get(ModelVersion, outcome.version)
        assert row is not None and row.status == "rejected" and row.trigger == "button"
        assert f"{outcome.candidate_macro_f1:.4f} vs {outcome.champion_macro_f1:.4f}" in (row.reason or "")
        assert row.macro_f1 == outcome.candidate_macro_f1 and row.champion_macro_f1 == outcome.champion_macro_f1
        assert registry.champion(session).version == v1  # type: ignore[union-attr]
        assert registry.lease_state(session) is None  # released


@both
def test_two_retrains_started_at_once_one_runs(settings, database_url):
    support.champion_into(settings.model_dir)
    env = {**os.environ, "DATABASE_URL": database_url, "MODEL_DIR": str(settings.model_dir),
           "FURIWAKE_HOME": str(settings.home), "RETRAIN_CORPUS": str(support.tiny_corpus())}
    argv = [sys.executable, "-m", "cli", "retrain", "--json", "--epochs", "2"]
    children = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    decisions = sorted(r["decision"] for r in results)
    assert decisions[1] == "skipped" and decisions[0] in ("promoted", "rejected"), results
    ran = next(r for r in results if r["decision"] != "skipped")
    assert {"decision", "candidate_macro_f1", "champion_macro_f1", "version", "reason"} <= set(ran)
    assert isinstance(ran["candidate_macro_f1"], float) and isinstance(ran["champion_macro_f1"], float)

    listed = subprocess.run([sys.executable, "-m", "cli", "models", "--json"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    versions = {row["version"]: row for row in json.loads(listed.stdout)}
    assert len(versions) == 2 and versions[ran["version"]]["status"] == (
        "champion" if ran["decision"] == "promoted" else "rejected")
    assert sum(row["status"] == "champion" for row in versions.values()) == 1
