"""The network: raw token string in, three route probabilities (and fine-category probabilities) out.

    text ─ TextVectorization(words, ≤15k) ─ Embedding ─ LSTM ──────────────┐          ┌ route logits
         └ TextVectorization(char 1–3-grams, tf-idf, ≤40k) ─ Dense(32) ────┴─ dropout ┤
                                                                                      └ category logits
    × `members` independent copies of everything after the vectorizers; route = softmax(mean of their route logits)

The two vectorizers sit inside the saved model, so one `.keras` file is the whole artifact (no pickled tokenizer).
The numeric part is a nested model named `classifier`: training feeds it pre-vectorized batches, and the Predictor
calls it through XLA with bucketed shapes. The character n-gram arm ("wide") gives the LSTM what a TF-IDF model
sees — robustness to typos, hiragana spellings and unseen words — and is switched off with `wide=False`.

Members: networks that share the vectorizers and nothing else, each initialised from its own random draw and trained
on its own loss in the same run, averaged. Networks of different seeds make different mistakes on writers they never
saw, so their average beats each of them there (docs/quality.md measures it). Each member's layers carry its index
("lstm_0", "route_logits_1"); a version trained before members has the unsuffixed names of one network, and
serving.weights reads both.

The `category` head reads the same features as the route head: the fine category (one of the k labels seen in
training, e.g. "Payment - Refund") for the agents' pages. The route head is the contract and stays as it was; with
categories the model's outputs are a dict {"route", "category"} (plus each member's own, "route_0", …, when there
are several), without (a dataset with fewer than two fine labels, or a version trained before the head existed) the
route probabilities alone.
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
    members: int = 3  # independent networks in one model, their route logits averaged (docs/quality.md)
    linear: bool = True  # a logistic regression over the raw text's character n-grams, averaged with the network

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


def member_outputs(members: int, categories: int) -> dict[str, tuple[str, float]]:
    """The classifier's outputs while training: name → (which labels it is scored on, its loss weight).

    One member: "route" (and "category"), trained directly. Several: each member's own heads ("route_0", …) carry
    the loss, so every member learns as if trained alone (no parameter is shared, so their gradients never mix);
    the averaged "route" and "category" are scored with weight 0, which gives the ensemble's own validation loss
    for early stopping and its accuracy in the history at no cost to training."""
    heads = ["route"] + (["category"] if categories >= 2 else [])
    if members == 1:
        return {head: (head, LOSS_WEIGHTS[head]) for head in heads}
    outputs = {head: (head, 0.0) for head in heads}
    for head in heads:
        outputs.update({f"{head}_{m}": (head, LOSS_WEIGHTS[head]) for m in range(members)})
    return outputs


def _member(config: ModelConfig, m: int, ids: Any, grams: Any | None, vocabulary_size: int, categories: int
            ) -> tuple[Any, Any | None]:
    """One member's (route logits, category logits or None): its own embedding, LSTM, n-gram Dense and heads."""
    x = layers.Embedding(vocabulary_size, config.embedding_dim, mask_zero=True, name=f"embedding_{m}")(ids)
    x = layers.SpatialDropout1D(config.dropout / 2)(x)
    lstm = layers.LSTM(config.lstm_units, name=f"lstm_{m}")
    x = layers.Bidirectional(lstm, name=f"bilstm_{m}")(x) if config.bidirectional else lstm(x)
    parts = [x]
    if grams is not None:
        w = layers.Dropout(config.dropout)(grams)
        parts.append(layers.Dense(config.wide_units, activation="relu", name=f"wide_{m}")(w))
    x = layers.Concatenate()(parts) if len(parts) > 1 else parts[0]
    x = layers.Dropout(config.dropout)(x)
    route = layers.Dense(len(ROUTES), name=f"route_logits_{m}")(x)
    category = layers.Dense(categories, name=f"category_logits_{m}")(x) if categories >= 2 else None
    return route, category


def _averaged(logits: list[Any], name: str) -> Any:
    """softmax of the members' mean logits: the average of their log-probabilities, renormalised. Being linear in
    each member's head, it serves as one Dense over all members' features (serving.weights), and a temperature
    folded into every member's head divides the ensemble's logits by it."""
    mean = logits[0] if len(logits) == 1 else layers.Average(name=f"{name}_mean")(logits)
    return layers.Activation("softmax", name=name)(mean)


def build_classifier(
    config: ModelConfig, vocabulary_size: int, ngram_size: int | None, categories: int = 0
) -> keras.Model:
    """The numeric model of `config.members` independent members; `categories` ≥ 2 adds the fine-category head
    (fewer would teach it nothing). Outputs as member_outputs() names them: the route probabilities alone for one
    member without categories, else a dict."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    inputs = [ids]
    grams = None
    if ngram_size is not None:
        grams = keras.Input(shape=(ngram_size,), dtype="float32", name="ngrams")
        inputs.append(grams)
    heads = [_member(config, m, ids, grams, vocabulary_size, categories) for m in range(config.members)]
    outputs = {"route": _averaged([route for route, _ in heads], "route")}
    if categories >= 2:
        outputs["category"] = _averaged([category for _, category in heads], "category")
    if config.members > 1:
        for m, (route, category) in enumerate(heads):
            outputs[f"route_{m}"] = layers.Activation("softmax", name=f"route_{m}")(route)
            if category is not None:
                outputs[f"category_{m}"] = layers.Activation("softmax", name=f"category_{m}")(category)
    if len(outputs) == 1:
        return keras.Model(inputs, outputs["route"], name="classifier")
    return keras.Model(inputs, outputs, name="classifier")


def route_logit_layers(classifier: keras.Model) -> list[layers.Layer]:
    """The Dense layers whose outputs are averaged into the route's logits (one per member)."""
    return [layer for layer in classifier.layers if layer.name.startswith("route_logits_")]


def assemble(words: layers.Layer, ngrams: layers.Layer | None, classifier: keras.Model) -> keras.Model:
    """The end-to-end model that is saved: one string per ticket in, probabilities out (a dict of both heads' when
    the classifier has a category head)."""
    text = keras.Input(shape=(), dtype="string", name="text")
    features = [words(text)]
    if ngrams is not None:
        features.append(ngrams(text))
    return keras.Model(text, classifier(features), name="furiwake_router")
