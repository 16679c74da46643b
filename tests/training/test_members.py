"""Members (training.model): networks trained together learn exactly as each would alone, and the route is the
softmax of their mean logits, which a temperature folded into every member's head divides."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = ["パスワード を 忘れ た", "二重 に 請求 さ れ た", "荷物 が 届か ない", "ログイン でき ない", "返金 し て"] * 8
ROUTES = np.array([0, 1, 2, 0, 1] * 8, dtype="int32")


def _config(members: int):  # type: ignore[no-untyped-def]
    from training.model import ModelConfig

    # No dropout: its random masks would differ between the two runs compared below.
    return ModelConfig(sequence_length=8, max_tokens=100, embedding_dim=8, lstm_units=4, wide_max_tokens=300,
                       wide_units=4, dropout=0.0, members=members)


def _fit(classifier, words, ngrams, members: int) -> None:  # type: ignore[no-untyped-def]
    from training.model import member_outputs
    from training.train import _dataset, _targets, compile_classifier

    outputs = member_outputs(members, 0)
    compile_classifier(classifier, 0.01, outputs)
    labels, weights = _targets(ROUTES, np.ones(len(TEXTS), "float32"), [None] * len(TEXTS), [],
                               np.ones(len(TEXTS), "float32"), outputs)
    classifier.fit(_dataset(TEXTS, labels, weights, 8, words, ngrams), epochs=2, verbose=0)


@pytest.mark.slow
def test_a_member_trained_beside_another_ends_where_it_would_alone():
    """The averaged route is scored with weight 0 and no layer is shared, so member 0 of a pair gets exactly the
    gradients of a one-member model started from the same weights: an ensemble of independent networks, not one
    wide network whose parts co-adapt."""
    import keras

    from training.model import build_classifier, build_vectorizers

    words, ngrams = build_vectorizers(_config(1), TEXTS)
    keras.utils.set_random_seed(3)
    pair = build_classifier(_config(2), words.vocabulary_size(), ngrams.vocabulary_size())
    alone = build_classifier(_config(1), words.vocabulary_size(), ngrams.vocabulary_size())
    names = ("embedding_0", "lstm_0", "wide_0", "route_logits_0")
    for name in names:  # the same layer names in both: member 0's start is the lone network's start
        alone.get_layer(name).set_weights(pair.get_layer(name).get_weights())
    other_before = [w.copy() for w in pair.get_layer("route_logits_1").get_weights()]

    _fit(pair, words, ngrams, 2)
    _fit(alone, words, ngrams, 1)

    for name in names:
        for together, single in zip(pair.get_layer(name).get_weights(), alone.get_layer(name).get_weights(),
                                    strict=True):
            np.testing.assert_allclose(together, single, rtol=1e-4, atol=1e-5)
    assert any(not np.array_equal(a, b) for a, b in zip(other_before, pair.get_layer("route_logits_1").get_weights(),
                                                          strict=True))  # member 1 learnt too


@pytest.mark.slow
def test_the_route_is_the_softmax_of_the_members_mean_logits_and_a_folded_temperature_divides_it():
    import keras
    import tensorflow as tf

    from training import calibration
    from training.model import build_classifier, build_vectorizers, route_logit_layers

    words, ngrams = build_vectorizers(_config(3), TEXTS)
    keras.utils.set_random_seed(5)
    classifier = build_classifier(_config(3), words.vocabulary_size(), ngrams.vocabulary_size())
    classifier.set_weights([w * 3 for w in classifier.get_weights()])  # outputs far from uniform
    inputs = [words(tf.constant(TEXTS)), ngrams(tf.constant(TEXTS))]
    outputs = {name: value.numpy() for name, value in classifier(inputs).items()}
    assert set(outputs) == {"route", "route_0", "route_1", "route_2"}
    mean_log = np.mean([np.log(outputs[f"route_{m}"]) for m in range(3)], axis=0)
    expected = np.exp(mean_log) / np.exp(mean_log).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(outputs["route"], expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(outputs["route_0"], outputs["route_1"], atol=1e-2)  # members differ: the mean has teeth

    assert [layer.name for layer in route_logit_layers(classifier)] == [f"route_logits_{m}" for m in range(3)]
    for head in route_logit_layers(classifier):
        calibration.fold_into_head(head, 2.5)
    np.testing.assert_allclose(classifier(inputs)["route"].numpy(), calibration.scaled(outputs["route"], 2.5),
                               rtol=1e-4, atol=1e-6)


def test_bagging_weighs_each_members_rows_by_its_own_bootstrap_counts_and_leaves_the_averaged_heads_alone():
    from training.model import member_outputs
    from training.train import _targets, bootstrap_bags

    bags = bootstrap_bags(2, 1000, seed=1)
    assert bags.shape == (2, 1000) and set(np.unique(bags)) <= set(range(12))
    assert abs(bags.mean() - 1.0) < 0.1 and 0.3 < (bags == 0).mean() < 0.44  # Poisson(1): ~37 % left out
    assert not np.array_equal(bags[0], bags[1]) and np.array_equal(bags, bootstrap_bags(2, 1000, seed=1))

    routes, weights = np.array([0, 1, 2], "int32"), np.array([1.0, 2.0, 3.0], "float32")
    bags = np.array([[0, 1, 2], [1, 1, 0]], "float32")
    labels, weighted = _targets(routes, weights, ["A", None, "B"], ["A", "B"], np.ones(3, "float32"),
                                member_outputs(2, 2), bags)
    assert set(labels) == set(weighted) == {"route", "category", "route_0", "route_1", "category_0", "category_1"}
    assert weighted["route"].tolist() == [1.0, 2.0, 3.0]  # the averaged head: scored on every row (weight 0 loss)
    assert weighted["route_0"].tolist() == [0.0, 2.0, 6.0] and weighted["route_1"].tolist() == [1.0, 2.0, 0.0]
    assert weighted["category_0"].tolist() == [0.0, 0.0, 2.0]  # no fine label on row 1, left out by its bag on 0
    assert labels["route_1"].tolist() == [0, 1, 2] and labels["category"].tolist() == [0, 0, 1]
