"""The network: raw token string in, three route probabilities out.

    text ─ TextVectorization(words, ≤15k) ─ Embedding ─ LSTM ──────────────┐
         └ TextVectorization(char 1–3-grams, tf-idf, ≤40k) ─ Dense(32) ────┴─ Dense(3, softmax)

The two vectorizers sit inside the saved model, so one `.keras` file is the whole artifact (no pickled tokenizer).
The numeric part is a nested model named `classifier`: training feeds it pre-vectorized batches, and the Predictor
calls it through XLA with bucketed shapes. The character n-gram arm ("wide") gives the LSTM what a TF-IDF model
sees — robustness to typos, hiragana spellings and unseen words — and is switched off with `wide=False`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
from keras import layers

from core.routes import ROUTES


@dataclass(frozen=True)
class ModelConfig:
    max_tokens: int = 15_000
    sequence_length: int = 64
    embedding_dim: int = 128
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


def build_classifier(config: ModelConfig, vocabulary_size: int, ngram_size: int | None) -> keras.Model:
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
    out = layers.Dense(len(ROUTES), activation="softmax", name="route")(x)
    return keras.Model(inputs, out, name="classifier")


def assemble(words: layers.Layer, ngrams: layers.Layer | None, classifier: keras.Model) -> keras.Model:
    """The end-to-end model that is saved: one string per ticket in, probabilities out."""
    text = keras.Input(shape=(), dtype="string", name="text")
    features = [words(text)]
    if ngrams is not None:
        features.append(ngrams(text))
    return keras.Model(text, classifier(features), name="furiwake_router")
