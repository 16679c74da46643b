"""Load one model version and classify batches of tickets in one compiled call.

Imports TensorFlow: only the worker, the trainer and the CLI use this module, never the API.
The saved Keras model is the artifact; serving.compiled rearranges its weights into two compiled functions (string
vectorizing as a graph tf.function, the recurrent classifier under XLA) that compute the same probabilities with
far fewer operations, and serving.packing lays a batch's tickets end to end so the LSTM skips padding. XLA compiles
per input shape, so rows and row lengths are bucketed to 17 shapes (sequence length 120); a shape first met under
load would stall its batch for a compilation (0.3-0.8 s each on a shared 2-core machine, 6-13 s for all 17).

A worker therefore does not wait for all 17 (bench/coldstart.py): it compiles FIRST_SHAPES — one full-length row,
which can answer any batch — serves, and compiles the rest on a background thread (compile_rest_in_background).
Until a batch's own shape is compiled, its call goes to compiled shapes instead (_call): a short row is padded to a
longer one, rows are padded up to a compiled row count or split into several calls. Never a wait for a compile.

A version trained with the fine-category head also names each ticket's category (meta.json's "categories", in
the head's order) from the same compiled call; one trained before it serves routes alone, with category None.

A version with a linear arm (serving.linear, `linear.npz`) serves the average of the network's route probabilities
and the linear arm's, re-tempered (meta.json's extra.linear.temperature); the category comes from the network alone.
The linear arm reads the raw text, so the served entry points take it: scores(texts) / predict(texts), with the
prepared texts passed along when the caller has them. scores_prepared() is the network arm alone. The same pass
says whether each text is familiar: whether its n-gram coverage reaches the floor training measured on the
validation rows (extra.linear.coverage_floor); an unfamiliar ticket goes to review (worker.routing).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from core.artifacts import MalformedMetaError, meta_path, read_meta  # noqa: E402
from core.text import prepare_many  # noqa: E402
from serving import compiled  # noqa: E402
from serving.linear import LinearArm, blend  # noqa: E402
from serving.packing import Packed, pack  # noqa: E402
from serving.weights import ServingWeights, from_keras  # noqa: E402
from serving.weights import load as load_weights  # noqa: E402

MAX_BATCH = 128
# Packed rows per call: fine steps where a full batch lands (~30–50 rows of 120 tokens), coarse elsewhere.
ROW_SIZES = (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 96, MAX_BATCH)

log = logging.getLogger(__name__)

Shape = tuple[int, int]  # (packed rows, row length) of one compiled call


@dataclass(frozen=True)
class Prediction:
    route: str
    confidence: float
    probabilities: dict[str, float]
    category: str | None = None  # the fine category; None from a version without the category head
    category_confidence: float | None = None
    familiar: bool = True  # False: the text is unlike the rows the thresholds were measured on; review it


@dataclass(frozen=True)
class Scores:
    """One batch's outputs: route probabilities [n, routes], and category probabilities [n, categories] or None."""

    routes: np.ndarray
    categories: np.ndarray | None
    familiar: np.ndarray | None = None  # [n] bool from a version with a linear arm (its coverage floor)


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
    """A loaded model version. Build it after the worker forks (worker_process_init), once per process.

    `warm_up=True` compiles every shape before the constructor returns (the CLI, the benches, the tests); a worker
    passes False, then calls compile_first_shapes() and compile_rest_in_background() (worker.current_model).
    """

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
        model_file(version_path)  # checked even when the arrays are read: model.keras is the version's artifact
        weights = load_weights(version_path) or _from_keras(version_path)
        self.categories: list[str] = self._category_labels(weights.category_count)
        self._linear = LinearArm.load(version_path)
        self._linear_temperature = self._blend_temperature() if self._linear is not None else 1.0
        self.coverage_floor = self._coverage_floor()
        self._bidirectional = weights.bidirectional
        self._vectorize = compiled.vectorizer(weights)
        self._classify = compiled.classifier(weights)
        self._length_sizes = length_sizes(self.sequence_length)
        self._wide_units = int(self._vectorize(tf.constant([""]))[1].shape[1])
        # The shapes XLA has compiled, replaced whole (never mutated) so the serving thread reads a consistent set
        # while the background thread adds to it.
        self._compiled: frozenset[Shape] = frozenset()
        self._stop = threading.Event()  # set: the background compilation ends after the shape in hand
        if warm_up:
            self.compile_all_shapes()

    def _category_labels(self, width: int) -> list[str]:
        """meta.json's fine labels, checked against the category head: a mismatch would name wrong categories."""
        labels = self.meta.extra.get("categories", []) if width else []
        if not isinstance(labels, list) or len(labels) != width or not all(isinstance(x, str) for x in labels):
            raise MalformedMetaError(f"{meta_path(self.path)}: 'categories' should list the {width} fine labels of "
                                     "the model's category head")
        return list(labels)

    def _blend_temperature(self) -> float:
        return self._linear_figure("temperature", None, lambda t: t > 0,
                                   f"a version with {self.path / 'linear.npz'} needs extra.linear.temperature, the "
                                   "averaged arms' temperature (> 0)")

    def _coverage_floor(self) -> float:
        """Below it a ticket is unfamiliar; 0.0 (none is) for a version trained before the floor was measured."""
        return self._linear_figure("coverage_floor", 0.0, lambda floor: 0.0 <= floor <= 1.0,
                                   "extra.linear.coverage_floor should be a share between 0 and 1")

    def _linear_figure(self, key: str, default: float | None, valid: Callable[[float], bool], wanted: str) -> float:
        """A number training wrote under meta.json's extra.linear (`default` where it is absent), checked: a wrong
        one would misroute every ticket without an error."""
        linear = self.meta.extra.get("linear")
        value = linear.get(key, default) if isinstance(linear, dict) else default
        if not isinstance(value, int | float) or isinstance(value, bool) or not valid(float(value)):
            raise MalformedMetaError(f"{meta_path(self.path)}: {wanted}")
        return float(value)

    def shapes(self) -> list[tuple[int, int]]:
        """Every (rows, row length) a call can have (serving.packing): one short row, or full-length rows."""
        full = self._length_sizes[-1]
        return [(1, length) for length in self._length_sizes] + [(rows, full) for rows in ROW_SIZES[1:]]

    def first_shapes(self) -> list[Shape]:
        """The shapes compiled before serving: one full-length row, into which any batch can be padded or split."""
        return [(1, self._length_sizes[-1])]

    def compiled_shapes(self) -> frozenset[Shape]:
        return self._compiled

    def pending_shapes(self) -> list[Shape]:
        """The shapes not compiled yet, in the order the background thread compiles them: the short single rows
        first (one ticket's latency), then the row counts upwards."""
        compiled = self._compiled
        return [shape for shape in self.shapes() if shape not in compiled]

    def compile_shapes(self, shapes: Sequence[Shape], stop: threading.Event | None = None) -> None:
        """Have XLA compile these shapes now (0.1-1 s each), each marked usable once its compilation is done."""
        wide = np.zeros((MAX_BATCH, self._wide_units), dtype="float32")
        ends = np.zeros(MAX_BATCH, dtype="int32")
        self._vectorize(tf.constant(["warm up"]))
        if self._linear is not None:
            self._linear.log_probabilities(["warm up"])  # its key table is built on first use (~0.2 s)
        for rows, length in shapes:
            if stop is not None and stop.is_set():
                return
            ids = np.ones((rows, length), dtype="int32")
            extra = [ids] if self._bidirectional else []
            self._classify(ids, np.zeros((rows, length), dtype="float32"), ends, wide, *extra)
            self._compiled = self._compiled | {(rows, length)}

    def compile_all_shapes(self) -> None:
        """Every shape now, in this thread: no call will ever be padded or split."""
        self.compile_shapes(self.pending_shapes())

    def compile_first_shapes(self) -> None:
        """The minimum for serving: after this, every batch is answered without waiting for a compilation."""
        self.compile_shapes([shape for shape in self.first_shapes() if shape not in self._compiled])

    def compile_rest_in_background(self, done: Callable[[float], None] | None = None) -> threading.Thread:
        """Compile the pending shapes on a daemon thread while this predictor serves; `done(seconds)` after the
        last one. stop_compiling() ends it early (a version replaced before it finished).

        The thread's calls run beside the serving thread's: XLA compiles in the caller's thread, and a compiled
        call does not wait for another shape's compilation (bench/coldstart.py measures the serving latency
        meanwhile). A compile that fails is logged and leaves the shapes not compiled yet to padding or splitting."""

        def run() -> None:
            started = time.monotonic()
            try:
                self.compile_shapes(self.pending_shapes(), self._stop)
            except Exception:  # noqa: BLE001 - the compiled shapes keep serving; the rest are padded or split
                log.warning("model %s: compiling the remaining shapes failed", self.version, exc_info=True)
                return
            if done is not None and not self._stop.is_set():
                done(time.monotonic() - started)

        thread = threading.Thread(target=run, name=f"compile-{self.version}", daemon=True)
        thread.start()
        return thread

    def stop_compiling(self) -> None:
        self._stop.set()

    def _call(self, packed: Packed, wide: np.ndarray) -> list[np.ndarray]:
        """The classifier's heads ([slots, …] each) for a packed batch, through compiled shapes only.

        Its own shape when compiled; else padded up to a compiled shape (zero steps after a row's last ticket, zero
        rows after the last row: no ticket's end state or end index changes), at most twice its rows; else split
        into calls of the largest compiled row count below it, each ticket read from the call that holds its row.
        With nothing compiled yet (warm_up=False and no compile_first_shapes) the exact shape is compiled here.
        """
        rows, length = packed.ids.shape
        compiled = self._compiled
        if (rows, length) in compiled or not compiled:
            return self._run(packed, wide)
        if rows == 1:  # one row, cut short by serving.packing: pad it to the shortest compiled length above
            longer = [size for size in self._length_sizes if size >= length and (1, size) in compiled]
            return self._run(_pad(packed, 1, longer[0]) if longer else packed, wide)
        sizes = sorted(r for r, size in compiled if size == length)  # several rows are always full-length
        bigger, smaller = [r for r in sizes if r >= rows], [r for r in sizes if r < rows]
        if bigger and (bigger[0] <= 2 * rows or not smaller):
            return self._run(_pad(packed, bigger[0], length), wide)
        if not smaller:
            return self._run(packed, wide)
        chunk = smaller[-1]
        row_of = np.where(packed.ends > 0, (packed.ends - 1) // length, -1)
        heads: list[np.ndarray] = []
        for first in range(0, rows, chunk):
            mine = (row_of >= first) & (row_of < first + chunk)
            part = Packed(
                ids=packed.ids[first : first + chunk],
                starts=packed.starts[first : first + chunk],
                ends=np.where(mine, packed.ends - first * length, 0).astype(np.int32),
                reversed_ids=None if packed.reversed_ids is None else packed.reversed_ids[first : first + chunk],
            )
            out = self._run(_pad(part, chunk, length), wide)
            if not heads:
                heads = out  # tickets without tokens (row -1) keep the zero state's output of the first call
            else:
                for head, new in zip(heads, out, strict=True):
                    head[mine] = new[mine]
        return heads

    def _run(self, packed: Packed, wide: np.ndarray) -> list[np.ndarray]:
        extra = [packed.reversed_ids] if self._bidirectional else []
        return [head.numpy() for head in self._classify(packed.ids, packed.starts, packed.ends, wide, *extra)]

    def scores_prepared(self, prepared: Sequence[str]) -> Scores:
        """The network arm's outputs (both heads' probabilities) for texts already passed through
        core.text.prepare, ≤ 128 per compiled call. Not what a version with a linear arm serves: see scores()."""
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
            heads = self._call(packed, wide_slots)
            routes[start : start + len(chunk)] = heads[0][: len(chunk)]
            if categories is not None:
                categories[start : start + len(chunk)] = heads[1][: len(chunk)]
        return Scores(routes, categories)

    def probabilities_prepared(self, prepared: Sequence[str]) -> np.ndarray:
        """The network arm's route probabilities for prepared texts (shape [n, routes])."""
        return self.scores_prepared(prepared).routes

    def scores(self, texts: Sequence[str], prepared: Sequence[str] | None = None) -> Scores:
        """What this version serves for raw texts: the network's outputs, its route averaged with the linear arm's
        when the version has one. `prepared`: the texts through core.text.prepare, when the caller has them."""
        network = self.scores_prepared(prepare_many(texts) if prepared is None else prepared)
        if self._linear is None:
            return network
        linear, coverage = self._linear.read(texts)
        routes = blend(network.routes, linear, self._linear_temperature)
        return Scores(routes, network.categories, coverage >= self.coverage_floor)

    def arms(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Each arm's own route probabilities beside the served ones (bench/quality.py: what each arm adds)."""
        network = self.probabilities_prepared(prepare_many(texts))
        out = {"network": network}
        if self._linear is not None:
            linear = self._linear.log_probabilities(texts)
            out["linear"] = np.exp(linear).astype(np.float32)
            out["served"] = blend(network, linear, self._linear_temperature)
        return out

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.scores(texts).routes

    def predict(self, texts: Sequence[str], prepared: Sequence[str] | None = None) -> list[Prediction]:
        scores = self.scores(texts, prepared)
        return self.to_predictions(scores.routes, scores.categories, scores.familiar)

    def to_predictions(self, probabilities: np.ndarray, category_probabilities: np.ndarray | None = None,
                       familiar: np.ndarray | None = None) -> list[Prediction]:
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
                    familiar=True if familiar is None else bool(familiar[i]),
                )
            )
        return predictions


def _from_keras(version_path: Path) -> ServingWeights:
    """The serving arrays of a version saved without serving.npz (trained before it existed): from model.keras."""
    return from_keras(keras.saving.load_model(model_file(version_path), compile=False))


def _pad(packed: Packed, rows: int, length: int) -> Packed:
    """The batch padded with zeros to [rows, length]. End indices count positions row by row, so they hold when
    rows are added after the last one, and for a single row when it grows longer."""

    def grow(array: np.ndarray) -> np.ndarray:
        return np.pad(array, [(0, rows - array.shape[0]), (0, length - array.shape[1])])

    reversed_ids = None if packed.reversed_ids is None else grow(packed.reversed_ids)
    return Packed(ids=grow(packed.ids), starts=grow(packed.starts), ends=packed.ends, reversed_ids=reversed_ids)
