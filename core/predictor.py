"""Load one model version and classify batches of tickets in one compiled call.

Imports TensorFlow: only the worker, the trainer and the CLI use this module, never the API.
The string-handling vectorizers run as a plain tf.function; the numeric classifier runs under XLA
(`jit_compile=True`), which is ~4x faster than the graph LSTM on CPU for a single ticket. XLA compiles per input
shape, so batches are padded to a small set of (batch, length) buckets: a few shapes, each compiled once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from core.artifacts import read_meta  # noqa: E402
from core.text import prepare_many  # noqa: E402

MAX_BATCH = 128


@dataclass(frozen=True)
class Prediction:
    route: str
    confidence: float
    probabilities: dict[str, float]


def _bucket(n: int, smallest: int, largest: int, factor: int = 2) -> int:
    """The smallest of smallest·factor^k (capped at largest) that holds n: few shapes, each compiled once by XLA."""
    size = smallest
    while size < n and size < largest:
        size *= factor
    return min(size, largest)


class Predictor:
    """A loaded model version. Build it after the worker forks (worker_process_init), once per process."""

    def __init__(self, version_path: Path, warm_up: bool = True) -> None:
        self.path = version_path
        self.meta = read_meta(version_path)
        self.version: str = self.meta["version"]
        self.labels: list[str] = list(self.meta["labels"])
        self.thresholds: dict[str, float] = dict(self.meta.get("thresholds", {}))
        self.sequence_length: int = int(self.meta["model"]["sequence_length"])
        self.model = keras.saving.load_model(version_path / "model.keras", compile=False)
        words = self.model.get_layer("vectorize_words")
        layer_names = {layer.name for layer in self.model.layers}
        ngrams = self.model.get_layer("vectorize_ngrams") if "vectorize_ngrams" in layer_names else None
        classifier = self.model.get_layer("classifier")
        inner = {layer.name for layer in classifier.layers}
        embedding = classifier.get_layer("embedding")
        recurrent = classifier.get_layer("bilstm" if "bilstm" in inner else "lstm")
        wide = classifier.get_layer("wide") if ngrams is not None else None
        route = classifier.get_layer("route")
        self._wide = wide is not None

        # The n-gram arm's Dense runs here, next to the (dense, up to 40k wide) tf-idf vector it reads, so only
        # its 32 outputs per ticket travel on; dropout layers are identities at inference and are skipped.
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def vectorize(texts):  # type: ignore[no-untyped-def]
            ids = words(texts)
            hidden = wide(ngrams(texts)) if wide is not None and ngrams is not None else tf.zeros([tf.shape(ids)[0], 0])
            return ids, hidden

        @tf.function(jit_compile=True)
        def classify(ids, hidden):  # type: ignore[no-untyped-def]
            sequence = recurrent(embedding(ids), mask=embedding.compute_mask(ids))
            return route(tf.concat([sequence, hidden], axis=-1) if wide is not None else sequence)

        self._vectorize, self._classify = vectorize, classify
        if warm_up:
            # Compile the shapes single tickets meet first (up to 32 tokens) before the first real ticket waits.
            for token_count in (1, 12, 24):
                self.probabilities_prepared([" ".join(["warm"] * token_count)])

    def probabilities_prepared(self, prepared: Sequence[str]) -> np.ndarray:
        """Probabilities for texts already passed through core.text.prepare (shape [n, 3]).

        Within each chunk, tickets are grouped by length bucket (8, 16, 32, ... tokens) and each group runs as
        its own call: a batch of short tickets no longer pays for the padding of its one long e-mail.
        """
        result = np.zeros((len(prepared), len(self.labels)), dtype="float32")
        for start in range(0, len(prepared), MAX_BATCH):
            chunk = list(prepared[start : start + MAX_BATCH])
            ids, hidden = self._vectorize(tf.constant(chunk))
            ids, hidden = ids.numpy(), hidden.numpy()
            lengths = np.array([_bucket(max(1, int(n)), 8, self.sequence_length) for n in (ids != 0).sum(axis=1)])
            for length in np.unique(lengths):
                members = np.flatnonzero(lengths == length)
                n = len(members)
                rows = _bucket(n, 1, MAX_BATCH, factor=4)
                padded = np.zeros((rows, int(length)), dtype="int32")
                padded[:n] = ids[members, : int(length)]
                hidden_padded = np.zeros((rows, hidden.shape[1]), dtype="float32")
                hidden_padded[:n] = hidden[members]
                result[start + members] = self._classify(padded, hidden_padded).numpy()[:n]
        return result

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.probabilities_prepared(prepare_many(texts))

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return self.to_predictions(self.probabilities(texts))

    def to_predictions(self, probabilities: np.ndarray) -> list[Prediction]:
        predictions = []
        for row in probabilities:
            best = int(row.argmax())
            predictions.append(
                Prediction(
                    route=self.labels[best],
                    confidence=float(row[best]),
                    probabilities={label: float(p) for label, p in zip(self.labels, row, strict=True)},
                )
            )
        return predictions
