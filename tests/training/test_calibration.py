"""Temperature scaling: fitted on held-out rows it lowers their NLL, never changes a prediction, and folding it into
the route head gives the same probabilities as scaling them afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from training import calibration
from training.metrics import auto_routed, expected_calibration_error, review_thresholds, without_review

pytestmark = pytest.mark.unit


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _rows(sharpness: float, n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose true class follows softmax(logits) (calibrated at sharpness 1), shown as softmax(sharpness·logits)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=(n, 3))
    gold = np.array([rng.choice(3, p=p) for p in _softmax(logits)])
    return _softmax(sharpness * logits), gold


@pytest.mark.parametrize(("sharpness", "expected"), [(3.0, 3.0), (1.0, 1.0), (0.5, 0.5)])
def test_the_fitted_temperature_undoes_over_and_under_confidence(sharpness, expected):
    probabilities, gold = _rows(sharpness)
    temperature = calibration.fit_temperature(probabilities, gold)
    assert temperature == pytest.approx(expected, rel=0.15)
    fixed = calibration.scaled(probabilities, temperature)
    assert (fixed.argmax(axis=1) == probabilities.argmax(axis=1)).all()
    assert calibration.negative_log_likelihood(fixed, gold) <= calibration.negative_log_likelihood(probabilities, gold)
    correct = fixed.argmax(axis=1) == gold
    assert expected_calibration_error(fixed.max(axis=1), correct) < 0.03
    if sharpness != 1.0:
        before = expected_calibration_error(probabilities.max(axis=1), probabilities.argmax(axis=1) == gold)
        assert before > 0.05


def test_thresholds_reach_the_target_precision_on_the_rows_they_were_chosen_on():
    probabilities, gold_index = _rows(1.0, seed=1)
    gold = [("Account", "Payment", "Other")[i] for i in gold_index]
    thresholds = review_thresholds(gold, probabilities, target_precision=0.97)
    kept = auto_routed(gold, probabilities, thresholds)
    assert kept["accuracy"] >= 0.97 and 0.05 < kept["share"] < 0.5
    assert auto_routed(gold, probabilities, {})["share"] == 1.0
    # An unfamiliar row (Predictor.scores' flag) goes to review whatever its confidence, as in worker.routing.
    familiar = np.arange(len(gold)) % 4 != 0
    assert auto_routed(gold, probabilities, {}, familiar=familiar)["share"] == pytest.approx(familiar.mean())
    assert (without_review(probabilities, thresholds, familiar=familiar)
            == (without_review(probabilities, thresholds) & familiar)).all()


def test_the_bench_counts_as_routed_without_review_exactly_what_the_worker_routes():
    """training.metrics.without_review (the bench's and the training report's figure) and worker.routing's
    review_reason (what the worker does) decide the same for every row: confidence against the route's threshold,
    and an unfamiliar text held whatever its confidence."""
    from serving.predictor import Prediction
    from worker.routing import review_reason

    routes = ("Account", "Payment", "Other")
    probabilities, _ = _rows(1.0, n=600, seed=3)
    thresholds = {"Account": 0.6, "Payment": 0.8, "Other": 0.5}
    familiar = np.random.default_rng(4).random(len(probabilities)) > 0.2
    counted = without_review(probabilities, thresholds, familiar=familiar)
    routed = []
    for row, known in zip(probabilities, familiar, strict=True):
        route = routes[int(row.argmax())]
        prediction = Prediction(route=route, confidence=float(row.max()),
                                probabilities=dict(zip(routes, map(float, row), strict=True)), familiar=bool(known))
        routed.append(review_reason("a ticket", prediction, thresholds[route]) is None)
    assert counted.tolist() == routed
    assert 0 < sum(routed) < len(routed)  # both outcomes occur


def test_folding_the_temperature_into_the_head_equals_scaling_its_output():
    import keras
    rng = np.random.default_rng(2)
    inputs = keras.Input(shape=(4,))
    head = keras.layers.Dense(3, activation="softmax", name="route")
    model = keras.Model(inputs, head(inputs))
    head.set_weights([rng.normal(0, 3, (4, 3)).astype("float32"), rng.normal(0, 1, 3).astype("float32")])
    x = rng.normal(0, 1, (16, 4)).astype("float32")
    before = np.asarray(model(x))
    calibration.fold_into_head(head, 2.5)
    np.testing.assert_allclose(np.asarray(model(x)), calibration.scaled(before, 2.5), rtol=1e-4, atol=1e-6)
