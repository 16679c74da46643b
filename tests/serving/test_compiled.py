"""The compiled predictor (serving.compiled + serving.packing) computes what the Keras model computes, for every model
configuration `furiwake train` can build: LSTM or BiLSTM, with or without the character n-gram arm, with the
fine-category head or without it (a version trained before the head existed still loads and serves), one member or
several averaged (a version trained before members existed, with its single-network layer names, still serves)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.artifacts import MalformedMetaError
from tests.support.paths import CORPUS

pytestmark = pytest.mark.slow

EDGE_CASES = ["", "!!! ???", "x" * 3000, "ｶｰﾄﾞ　が　使えない😡", "a", "パスワード " * 200]
CATEGORIES = ["Account - Login", "Bug", "Payment - Refund", "Shipping", "Spam"]


def legacy_classifier(config, vocabulary_size: int, ngram_size: int | None, categories: int = 0):  # type: ignore[no-untyped-def]
    """The classifier as training.model built it before members (2026-12-04): unsuffixed layer names ("embedding",
    "lstm", "wide") and softmax Dense heads named "route" and "category". Registries still hold such versions."""
    import keras
    from keras import layers

    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = layers.Embedding(vocabulary_size, config.embedding_dim, mask_zero=True, name="embedding")(ids)
    lstm = layers.LSTM(config.lstm_units, name="lstm")
    x = layers.Bidirectional(lstm, name="bilstm")(x) if config.bidirectional else lstm(x)
    inputs, parts = [ids], [x]
    if ngram_size is not None:
        grams = keras.Input(shape=(ngram_size,), dtype="float32", name="ngrams")
        inputs.append(grams)
        parts.append(layers.Dense(config.wide_units, activation="relu", name="wide")(grams))
    x = layers.Concatenate()(parts) if len(parts) > 1 else parts[0]
    route = layers.Dense(3, activation="softmax", name="route")(x)
    if categories < 2:
        return keras.Model(inputs, route, name="classifier")
    category = layers.Dense(categories, activation="softmax", name="category")(x)
    return keras.Model(inputs, {"route": route, "category": category}, name="classifier")


def save_untrained(tmp_path: Path, texts: list[str], categories: list[str] | None = None, legacy: bool = False,
                   **config: object) -> Path:
    """A model of the given configuration with random weights (no training needed to compare two computations),
    saved as a version directory the Predictor can load; without `categories`, a route-only model as versions
    trained before the category head are."""
    import keras

    from training.model import ModelConfig, assemble, build_classifier, build_vectorizers

    keras.utils.set_random_seed(7)
    model_config = ModelConfig(sequence_length=24, max_tokens=2000, wide_max_tokens=3000, **config)  # type: ignore[arg-type]
    words, ngrams = build_vectorizers(model_config, texts)
    classifier = (legacy_classifier if legacy else build_classifier)(
        model_config, words.vocabulary_size(), ngrams.vocabulary_size() if ngrams is not None else None,
        len(categories or []),
    )
    # Larger than initial weights, so the gates saturate sometimes and a wrong formula can't hide in small numbers.
    classifier.set_weights([w * 3 for w in classifier.get_weights()])
    path = tmp_path / "v1"
    path.mkdir()
    assemble(words, ngrams, classifier).save(path / "model.keras")
    meta: dict[str, object] = {"version": "v1", "labels": ["Account", "Payment", "Other"], "thresholds": {},
                               "model": {"sequence_length": model_config.sequence_length}}
    if categories:
        meta["categories"] = categories
    (path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    from core.text import prepare_many
    from training.datasets import load

    return prepare_many(load(CORPUS).texts[:600])


@pytest.mark.parametrize("source", ["model.keras", "serving.npz"])
@pytest.mark.parametrize("config", [{}, {"wide": False}, {"bidirectional": True}, {"categories": CATEGORIES},
                                    {"wide": False, "bidirectional": True, "categories": CATEGORIES},
                                    {"members": 1, "categories": CATEGORIES},
                                    {"members": 2, "bidirectional": True},
                                    {"legacy": True, "categories": CATEGORIES},
                                    {"legacy": True, "bidirectional": True, "wide": False}],
                         ids=["lstm+ngrams", "lstm", "bilstm+ngrams", "lstm+ngrams+category", "bilstm+category",
                              "1 member+category", "2 members bilstm+ngrams", "legacy lstm+ngrams+category",
                              "legacy bilstm"])
def test_compiled_predictor_matches_the_keras_model(tmp_path, corpus_texts, config, source):
    """Every configuration has the default three members unless it says otherwise. Built from the Keras model (a
    version saved before serving.npz existed) or from the saved arrays alone (the word ids then come from
    serving.compiled's own lookup, not the Keras layer)."""
    import keras
    import tensorflow as tf

    from core.text import prepare_many
    from serving import weights
    from serving.predictor import Predictor
    from training.model import split_outputs

    path = save_untrained(tmp_path, corpus_texts, **config)
    reference_model = keras.saving.load_model(path / "model.keras", compile=False)
    if source == "serving.npz":
        weights.save(weights.from_keras(reference_model), path)
        assert weights.load(path) is not None
    predictor = Predictor(path, warm_up=False)

    # 300 tickets: two full chunks of 128 and a partial one; plus single tickets and the edge cases.
    texts = corpus_texts[:300] + prepare_many(EDGE_CASES)
    routes, categories = (None if out is None else out.numpy()
                          for out in split_outputs(reference_model(tf.constant(texts))))
    assert routes.std(axis=0).min() > 1e-3  # the tickets really get different outputs: the check has teeth
    scores = predictor.scores_prepared(texts)  # both heads from one compiled call per chunk
    np.testing.assert_allclose(scores.routes, routes, rtol=1e-4, atol=2e-6)
    np.testing.assert_allclose(predictor.probabilities_prepared(texts), routes, rtol=1e-4, atol=2e-6)
    if categories is None:
        assert scores.categories is None and predictor.categories == []
    else:
        assert categories.std(axis=0).min() > 1e-3
        np.testing.assert_allclose(scores.categories, categories, rtol=1e-4, atol=2e-6)
    for i in range(len(texts) - 8, len(texts)):
        single = predictor.scores_prepared([texts[i]])
        np.testing.assert_allclose(single.routes[0], routes[i], rtol=1e-4, atol=2e-6)
        if categories is not None:
            np.testing.assert_allclose(single.categories[0], categories[i], rtol=1e-4, atol=2e-6)


def test_a_route_only_version_still_serves_without_a_category(tmp_path, corpus_texts):
    """Versions trained before the category head stay in registries and may be rolled back to."""
    from serving.predictor import Predictor

    predictor = Predictor(save_untrained(tmp_path, corpus_texts), warm_up=False)
    predictions = predictor.predict(["パスワードを忘れました", "返金してください"])
    assert [p.route in ("Account", "Payment", "Other") for p in predictions] == [True, True]
    assert [(p.category, p.category_confidence) for p in predictions] == [(None, None), (None, None)]


def test_a_category_head_whose_labels_meta_json_lacks_is_refused(tmp_path, corpus_texts):
    """Naming categories from a list that does not match the head would put wrong labels on tickets."""
    from serving.predictor import Predictor

    path = save_untrained(tmp_path, corpus_texts, categories=CATEGORIES)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    meta["categories"] = CATEGORIES[:-1]
    (path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(MalformedMetaError, match="'categories' should list the 5 fine labels"):
        Predictor(path, warm_up=False)


def test_predictions_name_the_category_of_the_highest_probability(tmp_path, corpus_texts):
    from serving.predictor import Predictor

    predictor = Predictor(save_untrained(tmp_path, corpus_texts, categories=CATEGORIES), warm_up=False)
    texts = corpus_texts  # all 600: random weights favour one category; a few tickets in 600 still get another
    scores = predictor.scores_prepared(texts)
    predictions = predictor.predict(texts, prepared=texts)
    assert [p.category for p in predictions] == [CATEGORIES[i] for i in scores.categories.argmax(axis=1)]
    assert [p.category_confidence for p in predictions] == pytest.approx(scores.categories.max(axis=1).tolist())
    assert len({p.category for p in predictions}) > 1  # random weights still tell tickets apart


def test_an_unsupported_layer_configuration_is_refused(corpus_texts):
    """A recurrent layer the serving formulas weren't derived for is refused, not silently mis-served."""
    import keras
    from keras import layers

    from serving import weights
    from training.model import ModelConfig, assemble, build_vectorizers

    words, _ = build_vectorizers(ModelConfig(sequence_length=24, wide=False), corpus_texts[:100])
    ids = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(words.vocabulary_size(), 8, mask_zero=True, name="embedding")(ids)
    x = layers.LSTM(4, activation="relu", name="lstm")(x)
    classifier = keras.Model(ids, layers.Dense(3, activation="softmax", name="route")(x), name="classifier")
    with pytest.raises(weights.UnsupportedModel, match="tanh/sigmoid"):
        weights.from_keras(assemble(words, None, classifier))
