"""Load one model version and classify batches of tickets in one compiled call.

Imports TensorFlow: only the worker, the trainer and the CLI use this module, never the API.
The saved Keras model is the artifact; serving.compiled rearranges its weights into two compiled functions (string
vectorizing as a graph tf.function, the recurrent classifier under XLA) that compute the same probabilities with
far fewer operations, and serving.packing lays a batch's tickets end to end so the LSTM skips padding. XLA compiles
per input shape, so rows and row lengths are bucketed to 17 shapes (sequence length 120), and a worker compiles
them all when it loads a version (~4 s): a shape first met under load would stall its batch for a compilation.

A version trained with the fine-category head also names each ticket's category (meta.json's "categories", in
the head's order) from the same compiled call; one trained before it serves routes alone, with category None.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from core.artifacts import MalformedMetaError, meta_path, read_meta  # noqa: E402
from core.text import prepare_many  # noqa: E402
from serving import compiled  # noqa: E402
from serving.packing import pack  # noqa: E402

MAX_BATCH = 128
# Packed rows per call: fine steps where a full batch lands (~30–50 rows of 120 tokens), coarse elsewhere.
ROW_SIZES = (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 96, MAX_BATCH)


@dataclass(frozen=True)
class Prediction:
    route: str
    confidence: float
    probabilities: dict[str, float]
    category: str | None = None  # the fine category; None from a version without the category head
    category_confidence: float | None = None


@dataclass(frozen=True)
class Scores:
    """One batch's outputs: route probabilities [n, routes], and category probabilities [n, categories] or None."""

    routes: np.ndarray
    categories: np.ndarray | None


def length_sizes(sequence_length: int) -> tuple[int, ...]:
    """Row lengths a call may have: 8, 16, 32, ... below the model's sequence length, then that length."""
    return tuple(size for size in (8, 16, 32, 64, 128, 256, 512) if size < sequence_length) + (sequence_length,)


class UnreadableModelError(ValueError):
    """A version's model.keras that is missing or not a Keras archive; the message names the file."""


def model_file(version_path: Path) -> Path:
    """The version's model.keras, checked first: Keras says "File not found" for a file that is there but is not
    a zip archive (truncated, overwritten), which sends an operator looking for the wrong problem."""
    path = version_path / "model.keras"
    if not path.is_file():
        raise UnreadableModelError(f"{path} is missing")
    if not zipfile.is_zipfile(path):
        raise UnreadableModelError(f"{path} is not a Keras archive (a .keras zip file): damaged or truncated")
    return path


class Predictor:
    """A loaded model version. Build it after the worker forks (worker_process_init), once per process."""

    def __init__(self, version_path: Path, warm_up: bool = True) -> None:
        self.path = version_path
        self.meta = read_meta(version_path)
        if not self.meta.labels or self.meta.model.sequence_length is None:
            raise MalformedMetaError(f"{meta_path(version_path)} lacks the labels or model.sequence_length "
                                     "a predictor needs")
        self.version: str = self.meta.version
        self.labels: list[str] = list(self.meta.labels)
        self.thresholds: dict[str, float] = dict(self.meta.thresholds)
        self.sequence_length: int = int(self.meta.model.sequence_length)
        self.model = keras.saving.load_model(model_file(version_path), compile=False)
        self.categories: list[str] = self._category_labels()
        self._vectorize = compiled.vectorizer(self.model)
        self._classify, self._bidirectional = compiled.classifier(self.model)
        self._length_sizes = length_sizes(self.sequence_length)
        self._wide_units = int(self._vectorize(tf.constant([""]))[1].shape[1])
        if warm_up:
            self.compile_all_shapes()

    def _category_labels(self) -> list[str]:
        """meta.json's fine labels, checked against the category head: a mismatch would name wrong categories."""
        width = compiled.category_count(self.model)
        labels = self.meta.extra.get("categories", []) if width else []
        if not isinstance(labels, list) or len(labels) != width or not all(isinstance(x, str) for x in labels):
            raise MalformedMetaError(f"{meta_path(self.path)}: 'categories' should list the {width} fine labels of "
                                     "the model's category head")
        return list(labels)

    def shapes(self) -> list[tuple[int, int]]:
        """Every (rows, row length) a call can have (serving.packing): one short row, or full-length rows."""
        full = self._length_sizes[-1]
        return [(1, length) for length in self._length_sizes] + [(rows, full) for rows in ROW_SIZES[1:]]

    def compile_all_shapes(self) -> None:
        """Have XLA compile every shape now (~0.1–0.2 s each), so no ticket ever waits for a compilation: a
        worker calls this after the fork, and before a hot-reloaded version replaces the old one."""
        wide = np.zeros((MAX_BATCH, self._wide_units), dtype="float32")
        ends = np.zeros(MAX_BATCH, dtype="int32")
        self._vectorize(tf.constant(["warm up"]))
        for rows, length in self.shapes():
            ids = np.ones((rows, length), dtype="int32")
            extra = [ids] if self._bidirectional else []
            self._classify(ids, np.zeros((rows, length), dtype="float32"), ends, wide, *extra)

    def scores_prepared(self, prepared: Sequence[str]) -> Scores:
        """Both heads' probabilities for texts already passed through core.text.prepare, ≤ 128 per compiled call."""
        routes = np.zeros((len(prepared), len(self.labels)), dtype="float32")
        categories = np.zeros((len(prepared), len(self.categories)), dtype="float32") if self.categories else None
        for start in range(0, len(prepared), MAX_BATCH):
            chunk = list(prepared[start : start + MAX_BATCH])
            ids, wide = self._vectorize(tf.constant(chunk))
            ids = ids.numpy()
            lengths = (ids != 0).sum(axis=1)  # word ids are left-aligned, 0 only as padding
            wide_slots = np.zeros((MAX_BATCH, wide.shape[1]), dtype="float32")
            wide_slots[: len(chunk)] = wide.numpy()
            packed = pack(ids, lengths, self._length_sizes, ROW_SIZES, MAX_BATCH, reverse=self._bidirectional)
            extra = [packed.reversed_ids] if self._bidirectional else []
            heads = self._classify(packed.ids, packed.starts, packed.ends, wide_slots, *extra)
            routes[start : start + len(chunk)] = heads[0].numpy()[: len(chunk)]
            if categories is not None:
                categories[start : start + len(chunk)] = heads[1].numpy()[: len(chunk)]
        return Scores(routes, categories)

    def probabilities_prepared(self, prepared: Sequence[str]) -> np.ndarray:
        """Route probabilities for texts already passed through core.text.prepare (shape [n, routes])."""
        return self.scores_prepared(prepared).routes

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.probabilities_prepared(prepare_many(texts))

    def scores(self, texts: Sequence[str]) -> Scores:
        return self.scores_prepared(prepare_many(texts))

    def predict_prepared(self, prepared: Sequence[str]) -> list[Prediction]:
        scores = self.scores_prepared(prepared)
        return self.to_predictions(scores.routes, scores.categories)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return self.predict_prepared(prepare_many(texts))

    def to_predictions(self, probabilities: np.ndarray,
                       category_probabilities: np.ndarray | None = None) -> list[Prediction]:
        predictions = []
        for i, row in enumerate(probabilities):
            best = int(row.argmax())
            category, category_confidence = None, None
            if category_probabilities is not None and self.categories:
                top = int(category_probabilities[i].argmax())
                category, category_confidence = self.categories[top], float(category_probabilities[i][top])
            predictions.append(
                Prediction(
                    route=self.labels[best],
                    confidence=float(row[best]),
                    probabilities={label: float(p) for label, p in zip(self.labels, row, strict=True)},
                    category=category,
                    category_confidence=category_confidence,
                )
            )
        return predictions
