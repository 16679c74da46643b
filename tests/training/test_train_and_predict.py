"""A tiny real training run: saves, reloads and predicts identically (both heads: route and fine category);
probabilities sum to 1; CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.artifacts import NoModelError, current_version, read_meta, resolve
from serving.linear import LinearArm, blend
from tests.support.paths import CORPUS
from training.datasets import load

pytestmark = pytest.mark.slow


def test_artifact_directory_is_complete(trained_model_dir):
    path = resolve(None, trained_model_dir)
    assert {p.name for p in path.iterdir()} >= {"model.keras", "meta.json", "curves.png", "confusion.png",
                                                "serving.npz", "linear.npz"}
    meta = read_meta(path)
    assert meta.version == current_version(trained_model_dir) == path.name
    assert list(meta.labels) == ["Account", "Payment", "Other"]
    assert set(meta.thresholds) == set(meta.labels)
    assert meta.model.sequence_length is not None and meta.model.max_tokens is not None
    assert 16 <= meta.model.sequence_length <= 256 and meta.model.max_tokens <= 15000
    assert meta.counts.train is not None and meta.counts.validation is not None
    assert meta.counts.train + meta.counts.validation == meta.counts.rows
    assert meta.metrics.validation["accuracy"] > 0.7
    # The fine categories: the corpus's 19, in the head's order; far above chance (1/19) after a few epochs.
    assert meta.extra["categories"] == load(CORPUS).category_labels() and len(meta.extra["categories"]) == 19
    fine = meta.metrics.validation["category"]
    assert fine["n"] == meta.counts.validation and fine["accuracy"] > 0.4 and fine["macro_f1"] > 0.3
    # The linear arm: its own temperature, and each arm's validation macro-F1 beside the served average's.
    arm = LinearArm.load(path)
    assert meta.model.linear is True and meta.extra["linear"]["ngrams"] == len(arm.ngrams)
    assert meta.extra["linear"]["widths"] == list(arm.ngram_range) == [1, 4]
    assert meta.extra["linear"]["temperature"] == meta.metrics.validation["calibration"]["blend_temperature"] > 0
    # The arm's own temperature (fitted on the validation rows, folded into its coefficients) is on record too.
    assert meta.extra["linear"]["arm_temperature"] == meta.metrics.validation["calibration"]["linear_temperature"] > 0
    # The coverage floor: the validation rows' 1st percentile, so ~99 % of rows like the corpus's are familiar.
    floor = meta.extra["linear"]["coverage_floor"]
    assert floor == meta.metrics.validation["calibration"]["coverage_floor"] and 0.0 < floor < 1.0
    corpus = load(CORPUS).texts
    assert np.mean(arm.coverage(corpus) >= floor) > 0.97
    arms = meta.metrics.validation["arms"]
    assert set(arms) == {"network", "linear", "averaged"} and min(arms.values()) > 0.7
    assert arms["averaged"] == pytest.approx(meta.metrics.validation["macro_f1"])


def test_model_keras_holds_the_network_without_the_optimizers_state(trained_model_dir):
    """Adam's moments would triple the file that every machine fetches from the registry (core/model_store.py)."""
    import io
    import zipfile

    import h5py

    path = resolve(None, trained_model_dir)
    with zipfile.ZipFile(path / "model.keras") as archive:
        stored = h5py.File(io.BytesIO(archive.read("model.weights.h5")))
        names: list[str] = []
        stored.visit(names.append)
    kernels = [name for name in names if name.startswith("layers/functional/layers/lstm") and name.endswith("/vars/0")]
    assert len(kernels) == 3  # the three members' LSTM kernels are stored
    assert [name for name in names if "optimizer" in name] == []
    assert read_meta(path).model.members == 3


def test_meta_file_keeps_every_key_the_trainer_has_always_written(trained_model_dir):
    """Older code reads meta.json by raw keys: the typed writer must keep the file's shape."""
    path = resolve(None, trained_model_dir)
    raw = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    assert set(raw) >= {"version", "created_at", "labels", "data_hash", "counts", "balance", "model", "options",
                        "metrics", "thresholds", "history", "epochs_run", "train_seconds", "trigger", "categories"}
    assert {"accuracy", "val_accuracy", "loss", "val_loss", "category_accuracy"} <= set(raw["history"])
    assert set(raw["counts"]) == {"rows", "train", "validation", "train_by_route", "dropped"}
    assert {"sequence_length", "max_tokens", "embedding_dim", "lstm_units", "wide"} <= set(raw["model"])
    assert raw["labels"] == ["Account", "Payment", "Other"] and raw["version"] == path.name
    assert read_meta(path).to_json() == raw


def test_reloaded_model_and_compiled_predictor_agree_with_the_trained_model(trained_model_dir):
    import keras
    import tensorflow as tf

    from core.text import prepare_many
    from serving.predictor import Predictor

    path = resolve(None, trained_model_dir)
    texts = ["パスワードを忘れました", "カードが使えない", "荷物が届かない", "x" * 3000, "I was charged twice"] * 7
    prepared = prepare_many(texts)
    outputs = keras.saving.load_model(path / "model.keras", compile=False)(tf.constant(prepared))
    # Both heads, averaged over the three members, and each member's own.
    assert set(outputs) == {"route", "category"} | {f"{head}_{m}" for head in ("route", "category") for m in range(3)}
    predictor = Predictor(path)
    scores = predictor.scores(texts)
    network = predictor.scores_prepared(prepared)  # the network arm: what the Keras model computes
    np.testing.assert_allclose(network.routes, outputs["route"].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores.categories, outputs["category"].numpy(), rtol=1e-4, atol=1e-5)
    # Served: the network averaged with the linear arm (serving.linear), re-tempered as meta.json says.
    linear = LinearArm.load(path)
    temperature = read_meta(path).extra["linear"]["temperature"]
    np.testing.assert_allclose(scores.routes, blend(network.routes, linear.log_probabilities(texts), temperature),
                               rtol=1e-6)
    arms = predictor.arms(texts)
    np.testing.assert_allclose(arms["served"], scores.routes, rtol=1e-6)
    np.testing.assert_allclose(arms["linear"], np.exp(linear.log_probabilities(texts)), rtol=1e-6)
    np.testing.assert_allclose(predictor.probabilities(texts), scores.routes, rtol=1e-6)
    np.testing.assert_allclose(predictor.scores(texts, prepared).routes, scores.routes, rtol=1e-6)
    np.testing.assert_allclose(scores.routes.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(scores.categories.sum(axis=1), 1.0, atol=1e-5)
    # Familiar: the coverage reaches the floor; a script the corpus never used does not.
    np.testing.assert_array_equal(scores.familiar, linear.coverage(texts) >= predictor.coverage_floor)
    assert [p.familiar for p in predictor.predict(["Здравствуйте, не могу войти", "パスワードを忘れました"])] == \
        [False, True]
    single = predictor.predict(["パスワードを忘れました"])[0]
    assert single.route == max(single.probabilities, key=single.probabilities.get)
    assert sum(single.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert predictor.probabilities([]).shape == (0, 3)
    assert predictor.scores([]).categories.shape == (0, 19)


def test_predictions_carry_a_fine_category_of_the_trained_label_set(trained_model_dir):
    from serving.predictor import Predictor

    predictor = Predictor(resolve(None, trained_model_dir), warm_up=False)
    texts = ["パスワードを忘れてログインできません", "二重に請求されています。返金してください", "荷物がまだ届きません"]
    predictions = predictor.predict(texts)
    assert predictor.categories == read_meta(resolve(None, trained_model_dir)).extra["categories"]
    for prediction in predictions:
        assert prediction.category in predictor.categories
        assert 1 / 19 < prediction.category_confidence <= 1.0  # the argmax of 19 probabilities summing to 1
    # The category agrees with the route on tickets this plain (the corpus's categories are named by route).
    assert [p.category.split(" - ")[0] for p in predictions[:2]] == ["Account", "Payment"]
    assert predictions[2].category == "Shipping"


def test_no_model_yet_is_a_clear_error(tmp_path):
    with pytest.raises(NoModelError, match="furiwake train"):
        resolve(None, tmp_path)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_cli_evaluate_json_and_predict(trained_model_dir, tmp_path):
    sample = tmp_path / "s.tsv"
    sample.write_text("id\tquestion\tanswer\tcategory\n1\tパスワードを忘れました\ta\tAccount - Password\n"
                      "2\t二重に請求されています\ta\tPayment - Billing\n", encoding="utf-8")
    result = run_cli("evaluate", "--data", str(sample), "--model", str(trained_model_dir), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 2 and {"accuracy", "macro_f1", "per_route", "confusion", "ece"} <= set(metrics)
    result = run_cli("predict", "ログインできません", "--json", env={"MODEL_DIR": str(trained_model_dir)})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["route"] in ("Account", "Payment", "Other") and sum(out["probabilities"].values()) == pytest.approx(1)


@pytest.mark.parametrize(("args", "message"), [
    (("evaluate", "--data", "/no/such/file.tsv"), "no such file"),
    (("train", "--data", "BAD"), "expected header"),
    (("train", "--members", "0"), "'0' is not a whole number within 1..8"),
    (("predict", "hello"), "no trained model"),
    (("evaluate", "--data", str(CORPUS), "--format", "banking77"), "MAPPING.tsv: no such file"),
])
def test_cli_errors_are_one_line_without_traceback(tmp_path, args, message):
    bad = tmp_path / "bad.tsv"
    bad.write_text("nothing useful\n", encoding="utf-8")
    args = tuple(str(bad) if a == "BAD" else a for a in args)
    result = run_cli(*args, env={"MODEL_DIR": str(tmp_path / "empty")})
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
