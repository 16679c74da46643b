"""The trained model's weights (serving.weights: read from the Keras model, or from its saved arrays), as two
compiled functions that compute the same probabilities as the Keras model with far fewer operations. Imports
TensorFlow: only the worker, the trainer and the CLI use this, never the API.

`vectorizer(weights)` — strings in, (word ids, n-gram arm output) out; a graph tf.function (string ops can't go to
  XLA).
  * Word ids are what the model's TextVectorization computes (whitespace split, its vocabulary, 1 for an unknown
    word, truncated or padded with 0 to the sequence length), from a hash table of its vocabulary.
  * The n-gram arm is relu(tfidf(text) · W + b), where tfidf is a 40k-wide vector of count·idf. That equals
    relu(Σ over the text's n-grams of idf[g]·W[g] + b): an embedding-bag over a table with the idf folded in, so
    no 40k-wide vector is ever built. N-grams are looked up by an integer key made of their code points instead
    of by the joined n-gram string, which skips building a string per n-gram.

`classifier(weights)` — packed word ids in (serving.packing), probabilities out; one XLA-compiled call that returns
  every head's: the route's, and the fine category's when the model has that head (both read the same features).
  * Embedding then the LSTM's input projection is one linear map per token id, so `embedding · kernel + bias` is
    precomputed as one [vocabulary, 4·units] table: each step only multiplies the [units]-wide state.
  * sigmoid(x) = (1 + tanh(x/2)) / 2, so the 0.5 is folded into the i, f and o columns and all four gates take one
    tanh over the whole gate vector: one transcendental kernel per step instead of two (about half the step time).
  * Several members (training.model) step together: their tables carry a member axis and each step is one batched
    matmul; one head over all members' final states gives softmax of their mean logits.
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

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from serving.weights import CODE_POINT_BITS, ServingWeights  # noqa: E402


def _word_ids(weights: ServingWeights) -> Any:
    """[n] strings → [n, sequence_length] int32 word ids, as the Keras TextVectorization(split="whitespace",
    standardize=None, output_sequence_length=L) the model was trained with computes them."""
    vocabulary = weights.vocabulary
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(vocabulary[2:]), np.arange(2, len(vocabulary), dtype=np.int64)),
        default_value=1,  # the OOV index; index 0 is padding
    )
    length = weights.sequence_length

    def ids(texts):  # type: ignore[no-untyped-def]
        tokens = tf.strings.split(texts)  # whitespace, as the layer's split="whitespace"
        return tf.cast(table.lookup(tokens).to_tensor(default_value=0, shape=[None, length]), tf.int64)

    return ids


def vectorizer(weights: ServingWeights) -> Any:
    """tf.function: [n] prepared strings → ([n, sequence_length] int word ids, [n, wide units] n-gram arm output)."""
    words = _word_ids(weights)
    arm = weights.ngrams
    if arm is None:

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        def words_only(texts):  # type: ignore[no-untyped-def]
            ids = words(texts)
            return ids, tf.zeros([tf.shape(ids)[0], 0])

        return words_only

    # Index 0 is the OOV bucket; unknown n-grams fall to it through the table's default, as in the layer.
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(arm.keys, np.arange(1, len(arm.keys) + 1, dtype=np.int64)), default_value=0
    )
    widths, bias = arm.widths, tf.constant(arm.bias)
    # One extra all-zero row, for the windows that straddle two texts: they are looked up like any n-gram (cheaper
    # than filtering them out) and add nothing.
    folded = tf.constant(np.vstack([arm.folded_kernel, np.zeros((1, arm.folded_kernel.shape[1]), np.float32)]))
    straddling = arm.folded_kernel.shape[0]

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
                key = tf.bitwise.bitwise_or(tf.bitwise.left_shift(key, CODE_POINT_BITS), shifted[k : k + count])
                same_text = same_text & tf.equal(row[:count], row[k : k + count])
            index = tf.where(same_text, table.lookup(key), straddling)
            # Owners ascend, so the sorted segment sum applies (several times faster than the unsorted one); it
            # stops at the last owner, so texts at the end without a window of this width are padded back on.
            part = tf.math.segment_sum(tf.gather(folded, index), row[:count])
            summed += tf.pad(part, [[0, n - tf.shape(part, out_type=tf.int64)[0]], [0, 0]])
        return words(texts), tf.nn.relu(summed + bias)

    return words_and_ngrams


def _packed_lstm(table: tf.Tensor, recurrent: tf.Tensor, ids: tf.Tensor, starts: tf.Tensor) -> tf.Tensor:
    """Every member's state after every step of every row: [members, 1 + rows·length, units]; position 0 is a zero
    state. The members step together: one batched matmul per step instead of one call each."""
    members, units = recurrent.shape[0], recurrent.shape[1]
    rows, length = tf.shape(ids)[0], tf.shape(ids)[1]
    # Looked up step by step: the whole batch's [members, rows, length, 4·units] inputs at once would be the largest
    # buffer of the call (tens of MiB at the largest shapes, for every compiled shape).
    steps = tf.transpose(ids)  # [length, rows]
    keep = tf.transpose(1.0 - starts)[:, :, None]  # 0 where a new ticket starts: its state begins at zero

    def step(t, h, c, states):  # type: ignore[no-untyped-def]
        h, c = h * keep[t], c * keep[t]
        inputs = tf.gather(table, steps[t], axis=1)  # [members, rows, 4·units]
        i, f, g, o = tf.split(tf.tanh(inputs + tf.matmul(h, recurrent)), 4, axis=2)
        c = (0.5 + 0.5 * f) * c + (0.5 + 0.5 * i) * g
        h = (0.5 + 0.5 * o) * tf.tanh(c)
        return t + 1, h, c, states.write(t, h)

    zeros = tf.zeros([members, rows, units])
    _, _, _, states = tf.while_loop(
        lambda t, *_: t < length, step, (0, zeros, zeros, tf.TensorArray(tf.float32, size=length))
    )
    flat = tf.reshape(tf.transpose(states.stack(), [1, 2, 0, 3]), [members, -1, units])
    return tf.concat([tf.zeros([members, 1, units]), flat], axis=1)


def _final_states(table: tf.Tensor, recurrent: tf.Tensor, ids: tf.Tensor, starts: tf.Tensor, ends: tf.Tensor
                  ) -> tf.Tensor:
    """[slots, members·units]: each ticket's last state, member 0's units first (the heads' row order)."""
    states = tf.gather(_packed_lstm(table, recurrent, ids, starts), ends, axis=1)  # [members, slots, units]
    return tf.reshape(tf.transpose(states, [1, 0, 2]), [tf.shape(ends)[0], -1])


def classifier(weights: ServingWeights) -> Any:
    """The XLA function: it takes (ids, starts, ends, wide[, reversed ids]) from serving.packing and returns a tuple
    of probabilities: ([slots, routes],) for a route-only model, ([slots, routes], [slots, categories]) with the
    category head; see the module docstring for what the weights hold precomputed."""
    tables = [(tf.constant(table), tf.constant(recurrent)) for table, recurrent in weights.directions]
    bidirectional = weights.bidirectional
    heads = [(tf.constant(head.kernel), tf.constant(head.bias))
             for head in (weights.route, weights.category) if head is not None]

    # reduce_retracing: one generic trace; XLA still compiles (and caches) one executable per concrete shape.
    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def classify(ids, starts, ends, wide, reversed_ids=None):  # type: ignore[no-untyped-def]
        parts = [_final_states(*tables[0], ids, starts, ends)]
        if bidirectional:
            parts.append(_final_states(*tables[1], reversed_ids, starts, ends))
        features = tf.concat([*parts, wide], axis=1)
        return tuple(tf.nn.softmax(features @ kernel + bias) for kernel, bias in heads)

    return classify
