"""The trained Keras model's weights, rearranged into two compiled functions that compute the same probabilities
with far fewer operations. Imports TensorFlow: only the worker, the trainer and the CLI use this, never the API.

`vectorizer(model)` — strings in, (word ids, n-gram arm output) out; a graph tf.function (string ops can't go to XLA).
  * Word ids come from the model's own TextVectorization layer, unchanged.
  * The n-gram arm is relu(tfidf(text) · W + b), where tfidf is a 40k-wide vector of count·idf. That equals
    relu(Σ over the text's n-grams of idf[g]·W[g] + b): an embedding-bag over a table with the idf folded in, so
    no 40k-wide vector is ever built. N-grams are looked up by an integer key made of their code points instead
    of by the joined n-gram string, which skips building a string per n-gram.

`classifier(model)` — packed word ids in (serving.packing), probabilities out; one XLA-compiled call that returns
  every head's: the route's, and the fine category's when the model has that head (both read the same features).
  * Embedding then the LSTM's input projection is one linear map per token id, so `embedding · kernel + bias` is
    precomputed as one [vocabulary, 4·units] table: each step only multiplies the [units]-wide state.
  * sigmoid(x) = (1 + tanh(x/2)) / 2, so the 0.5 is folded into the i, f and o columns and all four gates take one
    tanh over the whole gate vector: one transcendental kernel per step instead of two (about half the step time).
  * Tickets are packed end to end in rows (serving.packing): the state is reset where a ticket starts and read where it
    ends, so the LSTM runs about as many steps as the batch has tokens, not rows × the longest ticket.
Both are traced with autograph=False: their loops are tf.while_loop or run over Python values at trace time, so
AutoGraph's source rewriting would change nothing and costs ~0.3 s of every load (bench/coldstart.py: a cold start).
Tests compare both functions with the Keras model itself (assert_allclose), for every supported configuration.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# An n-gram of up to three characters packs into one int64: 21 bits per code point (+1, so 0 means "none").
_CODE_POINT_BITS = 21
_MAX_NGRAM = 3


class UnsupportedModel(ValueError):
    """The model uses a layer configuration the serving functions were not written for."""


def _ngram_key(term: str) -> int:
    """The integer key of an n-gram in the vocabulary of a character-split TextVectorization.

    Keras joins the characters of an n-gram with a space separator: 'ab' is stored as 'a b', so a term of length
    2k-1 holds k characters at the even positions.
    """
    characters = term[::2]
    key = 0
    for character in characters:
        key = (key << _CODE_POINT_BITS) | (ord(character) + 1)
    return key


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise UnsupportedModel(f"the compiled predictor does not support {what}")


def _wide_arm(model: keras.Model) -> tuple[Any, tuple[int, ...], np.ndarray, np.ndarray] | None:
    """(key → n-gram index table, n-gram widths, idf-folded Dense kernel, Dense bias), or None without the arm."""
    if "vectorize_ngrams" not in {layer.name for layer in model.layers}:
        return None
    ngrams = model.get_layer("vectorize_ngrams")
    config = ngrams.get_config()
    widths = tuple(ngrams._ngrams or (1,))  # the layer keeps its normalised tuple privately
    _require(config["split"] == "character" and config["standardize"] is None, "an n-gram arm not over characters")
    _require(config["output_mode"] == "tf_idf", f"n-gram output mode {config['output_mode']!r}")
    _require(max(widths) <= _MAX_NGRAM, f"character n-grams longer than {_MAX_NGRAM}")
    dense = model.get_layer("classifier").get_layer("wide")
    _require(dense.get_config()["activation"] == "relu", "a non-relu n-gram Dense")
    kernel, bias = dense.get_weights()
    idf = np.asarray(keras.ops.convert_to_numpy(ngrams._lookup_layer.idf_weights), dtype=np.float32)
    vocabulary = ngrams.get_vocabulary()
    # Index 0 is the OOV bucket; unknown n-grams fall to it through the table's default, as in the layer.
    keys = np.array([_ngram_key(str(term)) for term in vocabulary[1:]], dtype=np.int64)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, np.arange(1, len(vocabulary), dtype=np.int64)), default_value=0
    )
    return table, widths, idf[:, None] * kernel, bias


def vectorizer(model: keras.Model) -> Any:
    """tf.function: [n] prepared strings → ([n, sequence_length] int word ids, [n, wide units] n-gram arm output)."""
    words = model.get_layer("vectorize_words")
    wide = _wide_arm(model)
    if wide is None:

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        def words_only(texts):  # type: ignore[no-untyped-def]
            ids = words(texts)
            return ids, tf.zeros([tf.shape(ids)[0], 0])

        return words_only

    table, widths, folded_kernel, bias = wide
    # One extra all-zero row, for the windows that straddle two texts: they are looked up like any n-gram (cheaper
    # than filtering them out) and add nothing.
    folded = tf.constant(np.vstack([folded_kernel, np.zeros((1, folded_kernel.shape[1]), np.float32)]))
    straddling = folded_kernel.shape[0]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def words_and_ngrams(texts):  # type: ignore[no-untyped-def]
        code_points = tf.strings.unicode_decode(texts, "UTF-8")
        shifted = tf.cast(code_points.flat_values, tf.int64) + 1
        row = code_points.value_rowids()  # which text each code point belongs to, ascending
        n = tf.shape(texts, out_type=tf.int64)[0]
        summed = tf.zeros([n, folded.shape[1]])
        for width in widths:  # every window of `width` code points
            count = tf.maximum(tf.size(shifted) - width + 1, 0)
            key, same_text = shifted[:count], tf.ones([count], tf.bool)
            for k in range(1, width):
                key = tf.bitwise.bitwise_or(tf.bitwise.left_shift(key, _CODE_POINT_BITS), shifted[k : k + count])
                same_text = same_text & tf.equal(row[:count], row[k : k + count])
            index = tf.where(same_text, table.lookup(key), straddling)
            # Owners ascend, so the sorted segment sum applies (several times faster than the unsorted one); it
            # stops at the last owner, so texts at the end without a window of this width are padded back on.
            part = tf.math.segment_sum(tf.gather(folded, index), row[:count])
            summed += tf.pad(part, [[0, n - tf.shape(part, out_type=tf.int64)[0]], [0, 0]])
        return words(texts), tf.nn.relu(summed + bias)

    return words_and_ngrams


def _lstm_tables(embedding: np.ndarray, layer: keras.layers.Layer) -> tuple[np.ndarray, np.ndarray]:
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


def _packed_lstm(table: tf.Tensor, recurrent: tf.Tensor, ids: tf.Tensor, starts: tf.Tensor) -> tf.Tensor:
    """The state after every step of every row, flattened to [1 + rows·length, units]; row 0 is a zero state."""
    units = recurrent.shape[0]
    rows, length = tf.shape(ids)[0], tf.shape(ids)[1]
    inputs = tf.transpose(tf.gather(table, ids), [1, 0, 2])  # [length, rows, 4·units]
    keep = tf.transpose(1.0 - starts)[:, :, None]  # 0 where a new ticket starts: its state begins at zero

    def step(t, h, c, states):  # type: ignore[no-untyped-def]
        h, c = h * keep[t], c * keep[t]
        i, f, g, o = tf.split(tf.tanh(inputs[t] + h @ recurrent), 4, axis=1)
        c = (0.5 + 0.5 * f) * c + (0.5 + 0.5 * i) * g
        h = (0.5 + 0.5 * o) * tf.tanh(c)
        return t + 1, h, c, states.write(t, h)

    zeros = tf.zeros([rows, units])
    _, _, _, states = tf.while_loop(
        lambda t, *_: t < length, step, (0, zeros, zeros, tf.TensorArray(tf.float32, size=length))
    )
    flat = tf.reshape(tf.transpose(states.stack(), [1, 0, 2]), [-1, units])
    return tf.concat([tf.zeros([1, units]), flat], axis=0)


def _softmax_head(inner: keras.Model, name: str) -> tuple[tf.Tensor, tf.Tensor] | None:
    """(kernel, bias) of a softmax Dense layer of the classifier, or None when the model has no such head."""
    if name not in {layer.name for layer in inner.layers}:
        return None
    head = inner.get_layer(name)
    _require(head.get_config()["activation"] == "softmax", f"a {name} layer without softmax")
    kernel, bias = (tf.constant(w) for w in head.get_weights())
    return kernel, bias


def has_category_head(model: keras.Model) -> bool:
    """Whether the model was trained with the fine-category head (versions trained before it have the route only)."""
    return "category" in {layer.name for layer in model.get_layer("classifier").layers}


def category_count(model: keras.Model) -> int:
    """How many fine categories the head names (0 without the head)."""
    if not has_category_head(model):
        return 0
    return int(model.get_layer("classifier").get_layer("category").get_weights()[1].shape[0])


def classifier(model: keras.Model) -> tuple[Any, bool]:
    """(XLA function, bidirectional?). The function takes (ids, starts, ends, wide[, reversed ids]) from
    serving.packing and returns a tuple of probabilities: ([slots, routes],) for a route-only model,
    ([slots, routes], [slots, categories]) with the category head; see the module docstring for what it
    precomputes."""
    inner = model.get_layer("classifier")
    names = {layer.name for layer in inner.layers}
    embedding = inner.get_layer("embedding").get_weights()[0]
    bidirectional = "bilstm" in names
    if bidirectional:
        pair = inner.get_layer("bilstm")
        _require(pair.get_config()["merge_mode"] == "concat", "a BiLSTM not merged by concatenation")
        directions = [_lstm_tables(embedding, pair.forward_layer), _lstm_tables(embedding, pair.backward_layer)]
    else:
        directions = [_lstm_tables(embedding, inner.get_layer("lstm"))]
    tables = [(tf.constant(table), tf.constant(recurrent)) for table, recurrent in directions]
    route, category = _softmax_head(inner, "route"), _softmax_head(inner, "category")
    if route is None:
        raise UnsupportedModel("the compiled predictor does not support a classifier without a route layer")
    heads = [route] if category is None else [route, category]

    # reduce_retracing: one generic trace; XLA still compiles (and caches) one executable per concrete shape.
    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def classify(ids, starts, ends, wide, reversed_ids=None):  # type: ignore[no-untyped-def]
        parts = [tf.gather(_packed_lstm(*tables[0], ids, starts), ends)]
        if bidirectional:
            parts.append(tf.gather(_packed_lstm(*tables[1], reversed_ids, starts), ends))
        features = tf.concat([*parts, wide], axis=1)
        return tuple(tf.nn.softmax(features @ kernel + bias) for kernel, bias in heads)

    return classify, bidirectional
