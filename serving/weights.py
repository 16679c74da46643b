"""What serving needs of a trained model, as plain arrays: read once from the Keras model, saved beside it.

`from_keras(model)` rearranges a saved model's weights into the arrays serving.compiled builds its two functions
from (the module docstring there says why each is shaped so): the word vocabulary, the n-gram arm's integer keys and
idf-folded kernel, each LSTM direction's token table and recurrent kernel (sigmoid's 0.5 folded in), and the
softmax heads. A model of several members (training.model) becomes the same arrays with a member axis on the LSTM
tables, the members' n-gram units side by side, and one head over all of their features. `save` writes them to the
version's `serving.npz` when it is trained; `load` reads them back.

Why a second file when `model.keras` is the artifact: loading a Keras model builds every layer, both vectorizers'
lookup tables and a tf.function per layer call, then all of it is thrown away for the compiled path. In a worker
child that costs ~1 s and ~70 MiB that never comes back (bench/memory.py); reading these arrays costs neither. The
file is written from the model reloaded from `model.keras` and checked against it before the version is saved
(training/train.py), and a version without it (trained before it existed) is served from `model.keras` as before.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FILE = "serving.npz"
FORMAT = 2  # bumped when the arrays change meaning: a file of another format is ignored (model.keras is used)
READABLE = (1, 2)  # format 1: one member, its LSTM arrays without the leading member axis

# An n-gram of up to three characters packs into one int64: 21 bits per code point (+1, so 0 means "none").
CODE_POINT_BITS = 21
MAX_NGRAM = 3


class UnsupportedModel(ValueError):
    """The model uses a layer configuration the serving functions were not written for."""


@dataclass(frozen=True)
class NgramArm:
    keys: np.ndarray  # int64 [n]: the packed code points of vocabulary entry i + 1 (0 is the OOV bucket)
    widths: tuple[int, ...]  # the n-gram widths, e.g. (1, 2, 3)
    folded_kernel: np.ndarray  # float32 [n + 1, members · units]: idf[i] · each member's Dense kernel[i], side by side
    bias: np.ndarray  # float32 [members · units]


@dataclass(frozen=True)
class Head:
    kernel: np.ndarray  # float32 [features, classes]
    bias: np.ndarray  # float32 [classes]


@dataclass(frozen=True)
class ServingWeights:
    vocabulary: np.ndarray  # str [v]: word ids' tokens, index 0 the padding "" and 1 the OOV "[UNK]"
    sequence_length: int
    # Per LSTM direction: (token tables [members, vocabulary, 4·units], recurrent kernels [members, units, 4·units]).
    directions: tuple[tuple[np.ndarray, np.ndarray], ...]
    # The heads read [direction 0 of every member, direction 1 of every member, n-gram arm of every member]: one
    # Dense over all members' features whose kernel is theirs stacked and divided by the member count, which is
    # softmax of their mean logits (training.model._averaged).
    route: Head
    category: Head | None  # None: a version trained before the fine-category head
    ngrams: NgramArm | None  # None: a model trained with wide=False

    @property
    def bidirectional(self) -> bool:
        return len(self.directions) == 2

    @property
    def category_count(self) -> int:
        return 0 if self.category is None else int(self.category.bias.shape[0])


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise UnsupportedModel(f"the compiled predictor does not support {what}")


def ngram_key(term: str) -> int:
    """The integer key of an n-gram in the vocabulary of a character-split TextVectorization.

    Keras joins the characters of an n-gram with a space separator: 'ab' is stored as 'a b', so a term of length
    2k-1 holds k characters at the even positions.
    """
    return code_point_key(term[::2])


def code_point_key(characters: str) -> int:
    """Up to three characters as one integer: their code points + 1, CODE_POINT_BITS each (fits an int64)."""
    key = 0
    for character in characters:
        key = (key << CODE_POINT_BITS) | (ord(character) + 1)
    return key


def _word_vocabulary(model: Any) -> tuple[np.ndarray, int]:
    words = model.get_layer("vectorize_words")
    config = words.get_config()
    _require(config["split"] == "whitespace" and config["standardize"] is None and config["output_mode"] == "int"
             and not config.get("ngrams"), "a word vectorizer other than whitespace-split ids")
    _require(config["output_sequence_length"] is not None, "a word vectorizer without a sequence length")
    vocabulary = [str(term) for term in words.get_vocabulary()]
    _require(vocabulary[:2] == ["", "[UNK]"], "a word vocabulary without padding and one OOV token first")
    return np.array(vocabulary, dtype=str), int(config["output_sequence_length"])


def _ngram_arm(model: Any, inner: Any, suffixes: list[str]) -> NgramArm | None:
    import keras

    if "vectorize_ngrams" not in {layer.name for layer in model.layers}:
        return None
    ngrams = model.get_layer("vectorize_ngrams")
    config = ngrams.get_config()
    widths = tuple(ngrams._ngrams or (1,))  # the layer keeps its normalised tuple privately
    _require(config["split"] == "character" and config["standardize"] is None, "an n-gram arm not over characters")
    _require(config["output_mode"] == "tf_idf", f"n-gram output mode {config['output_mode']!r}")
    _require(max(widths) <= MAX_NGRAM, f"character n-grams longer than {MAX_NGRAM}")
    dense = [inner.get_layer(f"wide{suffix}") for suffix in suffixes]
    _require(all(layer.get_config()["activation"] == "relu" for layer in dense), "a non-relu n-gram Dense")
    kernel = np.concatenate([layer.get_weights()[0] for layer in dense], axis=1)
    bias = np.concatenate([layer.get_weights()[1] for layer in dense])
    idf = np.asarray(keras.ops.convert_to_numpy(ngrams._lookup_layer.idf_weights), dtype=np.float32)
    vocabulary = ngrams.get_vocabulary()
    keys = np.array([ngram_key(str(term)) for term in vocabulary[1:]], dtype=np.int64)
    return NgramArm(keys, widths, (idf[:, None] * kernel).astype(np.float32), np.asarray(bias, np.float32))


def _lstm_tables(embedding: np.ndarray, layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """(token table [vocabulary, 4·units], recurrent kernel [units, 4·units]), with the sigmoid gates' 0.5 folded in."""
    config = layer.get_config()
    _require(
        config["activation"] == "tanh" and config["recurrent_activation"] == "sigmoid" and config["use_bias"],
        "an LSTM without tanh/sigmoid activations and a bias",
    )
    kernel, recurrent, bias = layer.get_weights()
    units = recurrent.shape[0]
    scale = np.full(4 * units, 0.5, dtype=np.float32)
    scale[2 * units : 3 * units] = 1.0  # Keras's gate order is i, f, g (the candidate, tanh), o
    return ((embedding @ kernel + bias) * scale).astype(np.float32), (recurrent * scale).astype(np.float32)


def _member_suffixes(inner: Any) -> list[str]:
    """The layer-name suffix of each member: "" for a version trained before members (layers "lstm", "route"…),
    else "_0", "_1", …"""
    names = {layer.name for layer in inner.layers}
    if names & {"lstm", "bilstm"}:
        return [""]
    suffixes: list[str] = []
    while f"embedding_{len(suffixes)}" in names:
        suffixes.append(f"_{len(suffixes)}")
    _require(bool(suffixes), "a classifier without an embedding")
    return suffixes


def _member_head(inner: Any, head: str, suffix: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A member's (kernel, bias) of the route or category head: a softmax Dense before members, a linear one
    (softmax after the members' average) since."""
    name = head if suffix == "" else f"{head}_logits{suffix}"
    if name not in {layer.name for layer in inner.layers}:
        return None
    layer = inner.get_layer(name)
    _require(layer.get_config()["activation"] == ("softmax" if suffix == "" else "linear"),
             f"a {name} layer with activation {layer.get_config()['activation']!r}")
    kernel, bias = layer.get_weights()
    return np.asarray(kernel, np.float32), np.asarray(bias, np.float32)


def _stacked_head(inner: Any, head: str, suffixes: list[str], blocks: list[int]) -> Head | None:
    """One Dense over all members' features, laid out as ServingWeights says: each member's kernel is cut into its
    feature blocks (each LSTM direction, then the n-gram arm), block k of every member placed together."""
    found = [_member_head(inner, head, suffix) for suffix in suffixes]
    if found[0] is None:
        return None
    parts = [part for part in found if part is not None]
    _require(len(parts) == len(found), f"members without a {head} head")
    edges = np.cumsum([0, *blocks])
    rows = [kernel[edges[k]:edges[k + 1]] for k in range(len(blocks)) for kernel, _ in parts]
    return Head((np.concatenate(rows) / len(parts)).astype(np.float32),
                np.mean([bias for _, bias in parts], axis=0).astype(np.float32))


def from_keras(model: Any) -> ServingWeights:
    """The arrays of a model `training.model.assemble` built (raises UnsupportedModel for any other layout)."""
    vocabulary, sequence_length = _word_vocabulary(model)
    inner = model.get_layer("classifier")
    suffixes = _member_suffixes(inner)
    per_member: list[tuple[tuple[np.ndarray, np.ndarray], ...]] = []  # each member's ((table, recurrent), …)
    names = {layer.name for layer in inner.layers}
    for suffix in suffixes:
        embedding = inner.get_layer(f"embedding{suffix}").get_weights()[0]
        if f"bilstm{suffix}" in names:
            pair = inner.get_layer(f"bilstm{suffix}")
            _require(pair.get_config()["merge_mode"] == "concat", "a BiLSTM not merged by concatenation")
            per_member.append((_lstm_tables(embedding, pair.forward_layer),
                               _lstm_tables(embedding, pair.backward_layer)))
        else:
            per_member.append((_lstm_tables(embedding, inner.get_layer(f"lstm{suffix}")),))
    _require(len({len(directions) for directions in per_member}) == 1, "members with different LSTM directions")
    directions = tuple((np.stack([member[d][0] for member in per_member]),
                        np.stack([member[d][1] for member in per_member])) for d in range(len(per_member[0])))
    ngrams = _ngram_arm(model, inner, suffixes)
    units = directions[0][1].shape[1]
    blocks = [units] * len(directions) + ([ngrams.bias.shape[0] // len(suffixes)] if ngrams is not None else [])
    route = _stacked_head(inner, "route", suffixes, blocks)
    if route is None:
        raise UnsupportedModel("the compiled predictor does not support a classifier without a route layer")
    return ServingWeights(vocabulary, sequence_length, directions, route,
                          _stacked_head(inner, "category", suffixes, blocks), ngrams)


def save(weights: ServingWeights, version_path: Path) -> Path:
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "vocabulary": weights.vocabulary,
        "sequence_length": np.array(weights.sequence_length),
        "route_kernel": weights.route.kernel, "route_bias": weights.route.bias,
    }
    for i, (table, recurrent) in enumerate(weights.directions):
        arrays[f"lstm{i}_table"], arrays[f"lstm{i}_recurrent"] = table, recurrent
    if weights.category is not None:
        arrays["category_kernel"], arrays["category_bias"] = weights.category.kernel, weights.category.bias
    if weights.ngrams is not None:
        arrays.update(ngram_keys=weights.ngrams.keys, ngram_widths=np.array(weights.ngrams.widths),
                      ngram_kernel=weights.ngrams.folded_kernel, ngram_bias=weights.ngrams.bias)
    path = version_path / FILE
    np.savez(path, **arrays)  # type: ignore[arg-type]  # not compressed: float weights barely compress, and loading stays a plain read
    return path


def _with_member_axis(array: np.ndarray) -> np.ndarray:
    return array if array.ndim == 3 else array[None]  # format 1: one member's [rows, columns]


def load(version_path: Path) -> ServingWeights | None:
    """The version's saved arrays, or None when it has none in this format (then model.keras is loaded)."""
    path = version_path / FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None  # damaged: model.keras is the artifact, and the store's hashes catch damage anyway
    if int(arrays.get("format", -1)) not in READABLE:
        return None
    directions = tuple((_with_member_axis(arrays[f"lstm{i}_table"]), _with_member_axis(arrays[f"lstm{i}_recurrent"]))
                       for i in range(2) if f"lstm{i}_table" in arrays)
    category = (Head(arrays["category_kernel"], arrays["category_bias"]) if "category_kernel" in arrays else None)
    ngrams = (NgramArm(arrays["ngram_keys"], tuple(int(w) for w in arrays["ngram_widths"]), arrays["ngram_kernel"],
                       arrays["ngram_bias"]) if "ngram_keys" in arrays else None)
    return ServingWeights(arrays["vocabulary"], int(arrays["sequence_length"]), directions,
                          Head(arrays["route_kernel"], arrays["route_bias"]), category, ngrams)
