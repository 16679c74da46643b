"""The network: raw token string in, three route probabilities (and fine-category probabilities) out.

    text ─ TextVectorization(words, ≤15k) ─ Embedding ─ LSTM ──────────────┐          ┌ route: Dense(3, softmax)
         └ TextVectorization(char 1–3-grams, tf-idf, ≤40k) ─ Dense(32) ────┴─ dropout ┤
                                                                                      └ category: Dense(k, softmax)

The two vectorizers sit inside the saved model, so one `.keras` file is the whole artifact (no pickled tokenizer).
The numeric part is a nested model named `classifier`: training feeds it pre-vectorized batches, and the Predictor
calls it through XLA with bucketed shapes. The character n-gram arm ("wide") gives the LSTM what a TF-IDF model
sees — robustness to typos, hiragana spellings and unseen words — and is switched off with `wide=False`.

The `category` head reads the same features as the route head: the fine category (one of the k labels seen in
training, e.g. "Payment - Refund") for the agents' pages. The route head is the contract and stays as it was; with
categories the model's outputs are a dict {"route", "category"}, without (a dataset with fewer than two fine
labels, or a version trained before the head existed) the route probabilities alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from serving.tensorflow_import import import_tensorflow

import_tensorflow()  # the system's SQLite first, TensorFlow's start-up lines kept out of quiet output

import keras  # noqa: E402
from keras import layers  # noqa: E402

from core.routes import ROUTES  # noqa: E402

# The route is the contract and the category an auxiliary task: an 18-way cross-entropy starts near ln 18 ≈ 2.9
# against the route's ln 3 ≈ 1.1, so at equal weight the finer head would pull the shared LSTM and n-gram features
# its way. Half keeps the route leading while the shared features still learn the finer distinctions.
LOSS_WEIGHTS = {"route": 1.0, "category": 0.5}


def split_outputs(outputs: Any) -> tuple[Any, Any | None]:
    """(route probabilities, category probabilities or None) of a model's output, whichever head layout it has."""
    if isinstance(outputs, dict):
        return outputs["route"], outputs.get("category")
    return outputs, None


@dataclass(frozen=True)
class ModelConfig:
    max_tokens: int = 15_000
    sequence_length: int = 64
    embedding_dim: int = 64  # 128 until 2026-12-04: 64 generalises better to later writing rounds (docs/quality.md)
    lstm_units: int = 64
    bidirectional: bool = False
    wide: bool = True
    wide_max_tokens: int = 40_000
    wide_units: int = 32
    dropout: float = 0.5

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def build_vectorizers(config: ModelConfig, prepared_texts: list[str]) -> tuple[layers.Layer, layers.Layer | None]:
    """Adapt the vectorizers on the training texts only (never the validation or test rows)."""
    words = layers.TextVectorization(
        max_tokens=config.max_tokens,
        standardize=None,  # core.text.prepare() already cleaned, lower-cased and tokenized with MeCab
        split="whitespace",
        output_mode="int",
        output_sequence_length=config.sequence_length,
        name="vectorize_words",
    )
    words.adapt(prepared_texts, batch_size=1024)
    if not config.wide:
        return words, None
    ngrams = layers.TextVectorization(
        max_tokens=config.wide_max_tokens,
        standardize=None,
        split="character",
        ngrams=(1, 2, 3),
        output_mode="tf_idf",
        name="vectorize_ngrams",
    )
    ngrams.adapt(prepared_texts, batch_size=1024)
    return words, ngrams


def build_classifier(
    config: ModelConfig, vocabulary_size: int, ngram_size: int | None, categories: int = 0
) -> keras.Model:
    """The numeric model; `categories` ≥ 2 adds the fine-category head (fewer would teach it nothing)."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = layers.Embedding(vocabulary_size, config.embedding_dim, mask_zero=True, name="embedding")(ids)
    x = layers.SpatialDropout1D(config.dropout / 2)(x)
    lstm = layers.LSTM(config.lstm_units, name="lstm")
    x = layers.Bidirectional(lstm, name="bilstm")(x) if config.bidirectional else lstm(x)
    inputs, parts = [ids], [x]
    if ngram_size is not None:
        grams = keras.Input(shape=(ngram_size,), dtype="float32", name="ngrams")
        w = layers.Dropout(config.dropout)(grams)
        w = layers.Dense(config.wide_units, activation="relu", name="wide")(w)
        inputs.append(grams)
        parts.append(w)
    x = layers.Concatenate()(parts) if len(parts) > 1 else parts[0]
    x = layers.Dropout(config.dropout)(x)
    route = layers.Dense(len(ROUTES), activation="softmax", name="route")(x)
    if categories < 2:
        return keras.Model(inputs, route, name="classifier")
    category = layers.Dense(categories, activation="softmax", name="category")(x)
    return keras.Model(inputs, {"route": route, "category": category}, name="classifier")


def assemble(words: layers.Layer, ngrams: layers.Layer | None, classifier: keras.Model) -> keras.Model:
    """The end-to-end model that is saved: one string per ticket in, probabilities out (a dict of both heads' when
    the classifier has a category head)."""
    text = keras.Input(shape=(), dtype="string", name="text")
    features = [words(text)]
    if ngrams is not None:
        features.append(ngrams(text))
    return keras.Model(text, classifier(features), name="furiwake_router")
