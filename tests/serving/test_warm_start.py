"""A predictor that serves before every shape is compiled (serving.predictor, worker cold start): a batch whose own
shape XLA has not compiled yet is padded up to, or split into, compiled shapes, gives what the Keras model gives, and
never makes XLA compile during serving; the rest compile on a background thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.serving.test_compiled import CATEGORIES, save_untrained
from tests.support.paths import CORPUS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    from core.text import prepare_many
    from training.datasets import load

    return prepare_many(load(CORPUS).texts[:600])


def record_calls(predictor) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """The (rows, length) of every classifier call the predictor makes from now on (its own function, wrapped)."""
    shapes: list[tuple[int, int]] = []
    classify = predictor._classify

    def recorded(ids, *args):  # type: ignore[no-untyped-def]
        shapes.append(tuple(ids.shape))
        return classify(ids, *args)

    predictor._classify = recorded
    return shapes


@pytest.mark.parametrize("config", [{}, {"bidirectional": True, "categories": CATEGORIES}],
                         ids=["lstm+ngrams", "bilstm+category"])
def test_only_the_first_shape_compiled_answers_every_batch_like_keras(tmp_path, corpus_texts, config):
    import keras
    import tensorflow as tf

    from serving.predictor import Predictor
    from training.model import split_outputs

    path = save_untrained(tmp_path, corpus_texts, **config)
    reference = keras.saving.load_model(path / "model.keras", compile=False)
    predictor = Predictor(path, warm_up=False)
    predictor.compile_first_shapes()
    assert predictor.compiled_shapes() == {(1, 24)} and len(predictor.pending_shapes()) == len(predictor.shapes()) - 1
    calls = record_calls(predictor)

    for texts in (corpus_texts[:1], corpus_texts[1:6], corpus_texts[:40], corpus_texts[:300]):
        routes, categories = (None if out is None else out.numpy()
                              for out in split_outputs(reference(tf.constant(texts))))
        scores = predictor.scores_prepared(texts)
        assert routes is not None
        np.testing.assert_allclose(scores.routes, routes, rtol=1e-4, atol=2e-6)
        if categories is not None:
            assert scores.categories is not None
            np.testing.assert_allclose(scores.categories, categories, rtol=1e-4, atol=2e-6)
    assert calls and set(calls) == {(1, 24)}  # every call went to the one compiled shape: no compile while serving
    assert predictor.compiled_shapes() == {(1, 24)}


def test_a_batch_is_padded_to_a_compiled_row_count_or_split_into_calls_of_one(tmp_path, corpus_texts):
    from serving.predictor import Predictor

    reference = Predictor(save_untrained(tmp_path, corpus_texts), warm_up=True)
    predictor = Predictor(reference.path, warm_up=False)
    predictor.compile_shapes([(1, 24), (4, 24), (16, 24)])
    calls = record_calls(predictor)
    for count in (3, 12, 128):
        texts = corpus_texts[:count] + [""]  # a ticket with no tokens keeps the zero state, whichever call
        np.testing.assert_allclose(predictor.probabilities_prepared(texts), reference.probabilities_prepared(texts),
                                   rtol=1e-4, atol=2e-6)
    assert set(calls) <= {(1, 24), (4, 24), (16, 24)}
    assert (16, 24) in calls and calls.count((16, 24)) > 1  # the 128-ticket batch (~96 rows) split into 16s


def test_the_rest_compile_in_the_background_while_the_predictor_serves(tmp_path, corpus_texts):
    from serving.predictor import Predictor

    predictor = Predictor(save_untrained(tmp_path, corpus_texts), warm_up=False)
    predictor.compile_first_shapes()
    finished = threading.Event()
    took: list[float] = []

    def done(seconds: float) -> None:
        took.append(seconds)
        finished.set()

    thread = predictor.compile_rest_in_background(done)
    while thread.is_alive():  # serving meanwhile, from this thread
        assert len(predictor.predict(corpus_texts[:50])) == 50
    thread.join()
    assert finished.is_set() and took[0] > 0
    assert predictor.compiled_shapes() == set(predictor.shapes()) and predictor.pending_shapes() == []
    calls = record_calls(predictor)
    predictor.predict(corpus_texts[:128])
    assert len(calls) == 1  # every shape compiled: one call of the batch's own shape
