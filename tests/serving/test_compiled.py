"""The compiled predictor (serving.compiled + serving.packing) computes what the Keras model computes, for every model
configuration `furiwake train` can build: LSTM or BiLSTM, with or without the character n-gram arm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import CORPUS

pytestmark = pytest.mark.slow

EDGE_CASES = ["", "!!! ???", "x" * 3000, "ｶｰﾄﾞ　が　使えない😡", "a", "パスワード " * 200]


def save_untrained(tmp_path: Path, texts: list[str], **config: object) -> Path:
    """A model of the given configuration with random weights (no training needed to compare two computations),
    saved as a version directory the Predictor can load."""
    import keras

    from training.model import ModelConfig, assemble, build_classifier, build_vectorizers

    keras.utils.set_random_seed(7)
    model_config = ModelConfig(sequence_length=24, max_tokens=2000, wide_max_tokens=3000, **config)  # type: ignore[arg-type]
    words, ngrams = build_vectorizers(model_config, texts)
    classifier = build_classifier(
        model_config, words.vocabulary_size(), ngrams.vocabulary_size() if ngrams is not None else None
    )
    # Larger than initial weights, so the gates saturate sometimes and a wrong formula can't hide in small numbers.
    classifier.set_weights([w * 3 for w in classifier.get_weights()])
    path = tmp_path / "v1"
    path.mkdir()
    assemble(words, ngrams, classifier).save(path / "model.keras")
    meta = {"version": "v1", "labels": ["Account", "Payment", "Other"], "thresholds": {},
            "model": {"sequence_length": model_config.sequence_length}}
    (path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    from core.text import prepare_many
    from training.datasets import load

    return prepare_many(load(CORPUS).texts[:600])


@pytest.mark.parametrize("config", [{}, {"wide": False}, {"bidirectional": True}],
                         ids=["lstm+ngrams", "lstm", "bilstm+ngrams"])
def test_compiled_predictor_matches_the_keras_model(tmp_path, corpus_texts, config):
    import keras
    import tensorflow as tf

    from core.text import prepare_many
    from serving.predictor import Predictor

    path = save_untrained(tmp_path, corpus_texts, **config)
    reference_model = keras.saving.load_model(path / "model.keras", compile=False)
    predictor = Predictor(path, warm_up=False)

    # 300 tickets: two full chunks of 128 and a partial one; plus single tickets and the edge cases.
    texts = corpus_texts[:300] + prepare_many(EDGE_CASES)
    reference = reference_model(tf.constant(texts)).numpy()
    assert reference.std(axis=0).min() > 1e-3  # the tickets really get different outputs: the check has teeth
    np.testing.assert_allclose(predictor.probabilities_prepared(texts), reference, rtol=1e-4, atol=2e-6)
    for text, expected in zip(texts[-8:], reference[-8:], strict=True):
        np.testing.assert_allclose(predictor.probabilities_prepared([text])[0], expected, rtol=1e-4, atol=2e-6)


def test_an_unsupported_layer_configuration_is_refused(corpus_texts):
    """A recurrent layer the serving formulas weren't derived for is refused, not silently mis-served."""
    import keras
    from keras import layers

    from serving import compiled
    from training.model import ModelConfig, assemble, build_vectorizers

    words, _ = build_vectorizers(ModelConfig(sequence_length=24, wide=False), corpus_texts[:100])
    ids = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(words.vocabulary_size(), 8, mask_zero=True, name="embedding")(ids)
    x = layers.LSTM(4, activation="relu", name="lstm")(x)
    classifier = keras.Model(ids, layers.Dense(3, activation="softmax", name="route")(x), name="classifier")
    with pytest.raises(compiled.UnsupportedModel, match="tanh/sigmoid"):
        compiled.classifier(assemble(words, None, classifier))
