"""worker.current_model's cold start and reload (bench/coldstart.py has the figures): a version serves once its first
shape is compiled, the rest compile in the background; a new version is loaded on a thread while the old one keeps
answering at once, then swapped in; a new version that cannot load leaves the old one serving. The model's version
(what the heartbeat and /readyz report) names a version only once it can route."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest

from core.artifacts import set_current
from tests.serving.test_compiled import save_untrained
from tests.support.paths import CORPUS
from worker import current_model
from worker.current_model import CurrentModel

pytestmark = pytest.mark.slow


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A models directory with v1 current and v2 (the same weights under another name) beside it."""
    import json

    from core.text import prepare_many
    from training.datasets import load

    v1 = save_untrained(tmp_path, prepare_many(load(CORPUS).texts[:600]))
    v2 = tmp_path / "v2"
    shutil.copytree(v1, v2)
    meta = json.loads((v2 / "meta.json").read_text(encoding="utf-8"))
    (v2 / "meta.json").write_text(json.dumps({**meta, "version": "v2"}), encoding="utf-8")
    set_current(tmp_path, "v1")
    return tmp_path


def wait_for(check, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_version_serves_after_its_first_shape_and_compiles_the_rest_meanwhile(models, caplog) -> None:
    caplog.set_level(logging.INFO, logger="worker.current_model")
    model = CurrentModel(models)
    assert model.version is None  # nothing claimed before the load
    predictor = model.predictor()
    try:
        assert model.version == "v1"
        assert predictor.first_shapes()[0] in predictor.compiled_shapes()
        [serving] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving model")]
        assert "serving model v1 (loaded in" in serving and "more shapes compiling in the background" in serving
        assert predictor.predict(["パスワードを忘れました"])[0].route in predictor.labels
        wait_for(lambda: predictor.pending_shapes() == [])
        done = f"model v1: all {len(predictor.shapes())} shapes compiled"
        wait_for(lambda: any(done in r.getMessage() for r in caplog.records))
    finally:
        model.close()


def test_a_new_version_loads_on_a_thread_while_the_old_one_answers_at_once(models, caplog) -> None:
    caplog.set_level(logging.INFO, logger="worker.current_model")
    model = CurrentModel(models)
    model.reset_after_fork()  # what a worker child does: it watches for a new version on a thread
    try:
        assert model.predictor().version == "v1"
        set_current(models, "v2")
        seen: list[tuple[str, float]] = []
        while not seen or seen[-1][0] != "v2":
            started = time.monotonic()
            predictor = model.predictor()
            seen.append((predictor.version, time.monotonic() - started))
            assert len(seen) < 2000, "v2 never served"  # 2000 × 10 ms: 20 s
            time.sleep(0.01)
        assert any(version == "v1" for version, _ in seen)  # the old version answered while v2 loaded
        assert max(took for _, took in seen) < 0.05  # and no call waited for the load (≥ 0.3 s on any machine)
        assert model.version == "v2"
        assert any("serving model v2 (loaded in" in r.getMessage() and "replacing v1" in r.getMessage()
                   for r in caplog.records)
    finally:
        model.close()


def test_a_new_version_that_cannot_load_leaves_the_old_one_serving(models, caplog, monkeypatch) -> None:
    caplog.set_level(logging.INFO, logger="worker.current_model")
    monkeypatch.setattr(current_model, "RELOAD_RETRY_SECONDS", 3600.0)
    model = CurrentModel(models)
    model.reset_after_fork()
    try:
        assert model.predictor().version == "v1"
        (models / "v2" / "model.keras").write_bytes(b"not a zip archive")
        set_current(models, "v2")
        wait_for(lambda: any("the model v2 in" in r.getMessage() and "v1 keeps serving" in r.getMessage()
                             for r in caplog.records), timeout=20)
        assert model.predictor().version == "v1" and model.version == "v1"
    finally:
        model.close()
