"""Train one model version from a Dataset and publish it as a self-contained artifact directory.

    models/<version>/model.keras   end-to-end model (vectorizers inside), no optimizer state
                     meta.json     version, created_at, labels, data hash, counts, config, metrics, thresholds,
                                   and "categories": the fine labels of the category head, in output order
                                   (core.artifacts.ArtifactMeta, written and read only by core.artifacts)
                     curves.png    training vs validation accuracy and loss (the prototype's two plots)
                     confusion.png validation confusion matrix
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.artifacts import ArtifactMeta, Metrics, ModelSettings, TrainCounts, set_current, write_meta
from core.config import DEFAULT_TARGET_PRECISION
from core.routes import ROUTES
from core.text import prepare_many
from serving.linear import LinearArm, blend, log_softmax
from training import calibration
from training.datasets import Dataset
from training.metrics import category_scores, review_thresholds, score

BALANCE_MODES = ("weights", "cap", "none")
# A served ticket whose n-gram coverage is below this percentile of the validation rows' goes to review.
COVERAGE_PERCENTILE = 1.0


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    validation_fraction: float = 0.2
    seed: int = 20261124
    balance: str = "weights"  # class weights; "cap" = the prototype's per-route cap; "none"
    cap: int | None = None  # for balance="cap": rows per route (default: the smallest route's count)
    patience: int = 3
    target_precision: float = DEFAULT_TARGET_PRECISION  # for the per-route review thresholds
    sequence_percentile: float = 95.0
    model: Any = None  # training.model.ModelConfig; None = defaults (kept untyped so TF loads lazily)
    sample_weights: dict[str, float] = field(default_factory=dict)  # per Example.origin; 1.0 where absent
    bagging: bool = False  # with several members: each trains on its own bootstrap resample (bootstrap_bags)


@dataclass(frozen=True)
class TrainResult:
    version: str
    path: Path
    meta: ArtifactMeta


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)


def split(dataset: Dataset, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified, seeded split of row indices into training and validation."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(dataset))
    train_idx, val_idx = train_test_split(indices, test_size=fraction, random_state=seed, stratify=dataset.routes)
    return sorted(train_idx.tolist()), sorted(val_idx.tolist())


def cap_per_route(routes: list[str], cap: int | None, seed: int) -> tuple[list[int], int]:
    """The prototype's balancing: keep at most `cap` random rows of each route (default: the rarest route's count)."""
    counts = Counter(routes)
    cap = cap or min(counts.values())
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for route in ROUTES:
        rows = [i for i, r in enumerate(routes) if r == route]
        if len(rows) > cap:
            rows = sorted(rng.choice(rows, size=cap, replace=False).tolist())
        keep.extend(rows)
    return sorted(keep), cap


def sequence_length_for(prepared: list[str], percentile: float) -> int:
    """From the data: the token count that covers `percentile` % of tickets, rounded up to 8, within 16..256."""
    lengths = np.array([len(t.split()) for t in prepared])
    value = int(np.ceil(np.percentile(lengths, percentile) / 8.0) * 8)
    return int(min(256, max(16, value)))


def category_labels(dataset: Dataset) -> list[str]:
    """The category head's labels, in output order: every fine label of the data (both splits, so a label met
    only in validation is still one the head can name); none when fewer than two, which makes no head."""
    labels = dataset.category_labels()
    return labels if len(labels) >= 2 else []


def category_targets(categories: list[str | None], labels: list[str], weights: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(label indices, sample weights) for the category head: a row without a fine label gets index 0 and weight
    0, so it trains the route head only; the others keep their row weight (the origin's, not the route's
    class weight, which balances routes, not categories)."""
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index.get(c, 0) if c is not None else 0 for c in categories], dtype="int32")
    known = np.array([c is not None and c in index for c in categories], dtype="float32")
    return y, (weights * known).astype("float32")


def _targets(routes: np.ndarray, route_weights: np.ndarray, fine: list[str | None], categories: list[str],
             row_weights: np.ndarray, outputs: dict[str, tuple[str, float]], bags: np.ndarray | None = None
             ) -> tuple[Any, Any]:
    """(labels, sample weights) as fit() takes them: arrays for a route-only single model, else dicts by output
    (training.model.member_outputs: each output is scored on the route's or the category's labels). `bags`
    ([members, rows], see bootstrap_bags) multiplies each member's own outputs' weights."""
    by_head = {"route": (routes, route_weights)}
    if categories:
        by_head["category"] = category_targets(fine, categories, row_weights)
    if list(outputs) == ["route"]:
        return by_head["route"]
    weights = {}
    for name, (head, _) in outputs.items():
        member = name.rpartition("_")[2]
        bag = bags[int(member)] if bags is not None and member.isdigit() else 1.0
        weights[name] = (by_head[head][1] * bag).astype("float32")
    return {name: by_head[head][0] for name, (head, _) in outputs.items()}, weights


def bootstrap_bags(members: int, rows: int, seed: int) -> np.ndarray:
    """[members, rows] Poisson(1) counts: each member trains on its own bootstrap resample of the training rows
    (online bagging, Oza 2001), so members differ in what they saw as well as where they started."""
    return np.random.default_rng(seed).poisson(1.0, size=(members, rows)).astype("float32")


def compile_classifier(classifier: Any, learning_rate: float, outputs: dict[str, tuple[str, float]]) -> None:
    """Adam and sparse cross-entropy per output, weighted as training.model.member_outputs says; accuracy is
    reported for the served heads ("route", "category")."""
    import keras

    single = list(outputs) == ["route"]
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy" if single
        else {name: "sparse_categorical_crossentropy" for name in outputs},
        loss_weights=None if single else {name: weight for name, (_, weight) in outputs.items()},
        metrics=["accuracy"] if single
        else {name: ["accuracy"] if name in ("route", "category") else [] for name in outputs},
        jit_compile=False,  # batches have varying lengths; XLA would recompile for each
    )


def _features(words, ngrams):  # type: ignore[no-untyped-def]
    """A tf.data map: strings → (ids trimmed to the batch's longest ticket, [n-gram tf-idf])."""
    import tensorflow as tf

    def fn(texts, labels, weights):  # type: ignore[no-untyped-def]
        ids = words(texts)
        longest = tf.maximum(1, tf.reduce_max(tf.reduce_sum(tf.cast(ids != 0, tf.int32), axis=1)))
        ids = ids[:, :longest]
        inputs = (ids, ngrams(texts)) if ngrams is not None else (ids,)
        return inputs, labels, weights

    return fn


def _dataset(texts, labels, weights, batch_size, words, ngrams, shuffle_seed=None):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((texts, labels, weights))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(texts), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).map(_features(words, ngrams), num_parallel_calls=2).prefetch(2)


def train(
    dataset: Dataset,
    model_dir: Path,
    options: TrainOptions | None = None,
    progress: Callable[[str], None] | None = print,
    make_current: bool = True,
    trigger: str = "cli",
) -> TrainResult:
    """Train, evaluate on the held-out split, save, re-load to check the artifact, and publish atomically."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.tensorflow_import import import_tensorflow

    import_tensorflow()  # the system's SQLite first, TensorFlow's start-up lines kept out of quiet output
    import keras
    import tensorflow as tf

    from serving import weights as serving_weights
    from training import plots
    from training.model import (
        ModelConfig,
        assemble,
        build_classifier,
        build_vectorizers,
        member_outputs,
        route_logit_layers,
        split_outputs,
    )

    options = options or TrainOptions()
    started = time.monotonic()
    dataset = dataset.deduplicated()
    if len(dataset) < 20 or len(set(dataset.routes)) < len(ROUTES):
        raise ValueError(f"need at least 20 usable rows covering all of {ROUTES}; got {dataset.route_counts()}")
    keras.utils.set_random_seed(options.seed)

    _say(progress, f"[1/5] {len(dataset)} rows {dataset.route_counts()}; dropped {dict(dataset.dropped) or 'none'}")
    train_idx, val_idx = split(dataset, options.validation_fraction, options.seed)
    routes = dataset.routes
    balance_report: dict[str, Any] = {"mode": options.balance}
    if options.balance == "cap":
        kept, cap = cap_per_route([routes[i] for i in train_idx], options.cap, options.seed)
        train_idx = [train_idx[i] for i in kept]
        balance_report["cap"] = cap
    elif options.balance not in BALANCE_MODES:
        raise ValueError(f"balance must be one of {BALANCE_MODES}")

    _say(progress, f"[2/5] tokenizing {len(dataset)} texts with MeCab")
    prepared = prepare_many(dataset.texts)
    train_texts = [prepared[i] for i in train_idx]
    val_texts = [prepared[i] for i in val_idx]
    label_index = {route: i for i, route in enumerate(ROUTES)}
    y_train = np.array([label_index[routes[i]] for i in train_idx], dtype="int32")
    y_val = np.array([label_index[routes[i]] for i in val_idx], dtype="int32")
    categories = category_labels(dataset)
    fine = dataset.categories

    counts = np.bincount(y_train, minlength=len(ROUTES))
    class_weight = np.ones(len(ROUTES))
    if options.balance == "weights":
        class_weight = counts.sum() / (len(ROUTES) * np.maximum(counts, 1))
        balance_report["class_weight"] = {r: round(float(w), 4) for r, w in zip(ROUTES, class_weight, strict=True)}
    source_weight = np.array(
        [options.sample_weights.get(dataset.examples[i].origin, 1.0) for i in train_idx], dtype="float32"
    )
    w_train = (class_weight[y_train] * source_weight).astype("float32")
    w_val = np.ones(len(y_val), "float32")
    config = options.model or ModelConfig()
    outputs = member_outputs(config.members, len(categories))
    bags = (bootstrap_bags(config.members, len(train_idx), options.seed)
            if options.bagging and config.members > 1 else None)
    train_labels, train_weights = _targets(y_train, w_train, [fine[i] for i in train_idx], categories, source_weight,
                                           outputs, bags)
    val_labels, val_weights = _targets(y_val, w_val, [fine[i] for i in val_idx], categories, w_val, outputs)

    config = replace(config, sequence_length=sequence_length_for(train_texts, options.sequence_percentile))
    _say(progress, f"[3/5] building vocabularies; sequence length {config.sequence_length} "
         f"(p{options.sequence_percentile:g} of training token counts)")
    words, ngrams = build_vectorizers(config, train_texts)
    classifier = build_classifier(config, words.vocabulary_size(), ngrams.vocabulary_size() if ngrams else None,
                                  len(categories))
    compile_classifier(classifier, options.learning_rate, outputs)
    train_ds = _dataset(train_texts, train_labels, train_weights, options.batch_size, words, ngrams,
                        shuffle_seed=options.seed)
    val_ds = _dataset(val_texts, val_labels, val_weights, 256, words, ngrams)

    _say(progress, f"[4/5] training on {len(train_texts)} rows, validating on {len(val_texts)} "
         f"(up to {options.epochs} epochs, early stopping after {options.patience} without improvement)")
    history = classifier.fit(
        train_ds,
        validation_data=val_ds,
        epochs=options.epochs,
        verbose=2 if progress is not None and not sys.stdout.isatty() else (1 if progress is not None else 0),
        callbacks=[
            # The (averaged) route's own validation loss picks the epoch: the route is the contract.
            keras.callbacks.EarlyStopping(monitor="val_loss" if list(outputs) == ["route"] else "val_route_loss",
                                          mode="min", patience=options.patience, restore_best_weights=True)
        ],
    )
    # The fitted classifier holds Adam's two moment estimates per weight, which Keras would save with it (two thirds
    # of model.keras); a never-compiled copy with the same weights is the network alone.
    served = build_classifier(config, words.vocabulary_size(), ngrams.vocabulary_size() if ngrams else None,
                              len(categories))
    served.set_weights(classifier.get_weights())
    model = assemble(words, ngrams, served)
    raw_probabilities, val_category_probabilities = split_outputs(
        model.predict(tf.constant(val_texts), batch_size=256, verbose=0))
    raw_probabilities = np.asarray(raw_probabilities)
    val_gold = [ROUTES[i] for i in y_val]
    temperature = calibration.fit_temperature(raw_probabilities, y_val)
    for head in route_logit_layers(served):  # every member's: the averaged logits are divided by T
        calibration.fold_into_head(head, temperature)
    val_probabilities = calibration.scaled(raw_probabilities, temperature)
    linear: LinearArm | None = None
    linear_report: dict[str, Any] = {}
    if config.linear:
        _say(progress, f"[4/5] fitting the linear arm on the same {len(train_idx)} rows' raw text")
        linear, val_probabilities, linear_report = _fit_linear(dataset, train_idx, val_idx, y_train, y_val,
                                                               source_weight, val_probabilities)
    metrics = score(val_gold, val_probabilities)
    # ECE after scaling is measured on the rows T was fitted on (one parameter, so only slightly flattering);
    # bench/quality.py measures it on writers the model never saw.
    metrics["calibration"] = {"temperature": temperature, "ece_before": score(val_gold, raw_probabilities)["ece"],
                              "target_precision": options.target_precision}
    if linear is not None:
        metrics["calibration"]["blend_temperature"] = linear_report["temperature"]
        metrics["calibration"]["linear_temperature"] = linear_report["arm_temperature"]
        metrics["calibration"]["coverage_floor"] = linear_report["coverage_floor"]
        metrics["arms"] = linear_report["arms"]
    if val_category_probabilities is not None:
        metrics["category"] = category_scores([fine[i] for i in val_idx], val_category_probabilities, categories)
    thresholds = review_thresholds(val_gold, val_probabilities, options.target_precision)

    created = datetime.now(UTC)
    data_hash = dataset.content_hash()
    version = f"{created:%Y%m%d-%H%M%S}-{data_hash[:6]}"
    fine_figures = (f"; fine category ({len(categories)}) accuracy {metrics['category']['accuracy']:.4f}"
                    if categories else "")
    _say(progress, f"[5/5] validation accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}"
         f"{fine_figures}{_arms_figures(linear_report)}; temperature {temperature:g}; review thresholds {thresholds}; "
         f"saving version {version}")
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".staging-{version}-{os.getpid()}"
    staging.mkdir()
    try:
        model.save(staging / "model.keras")
        reloaded = keras.saving.load_model(staging / "model.keras", compile=False)
        sample = tf.constant(val_texts[:64])
        for saved, trained in zip(split_outputs(reloaded(sample)), split_outputs(model(sample)), strict=True):
            assert (saved is None) == (trained is None)
            if saved is not None:
                np.testing.assert_allclose(saved.numpy(), trained.numpy(), rtol=1e-5, atol=1e-6)
        # What a worker serves from (serving/weights.py), taken from the reloaded file so the two cannot differ.
        serving_weights.save(serving_weights.from_keras(reloaded), staging)
        if linear is not None:
            linear.save(staging)
            texts = [dataset.texts[i] for i in val_idx[:64]]
            np.testing.assert_allclose(LinearArm.load(staging).log_probabilities(texts),  # type: ignore[union-attr]
                                       linear.log_probabilities(texts), rtol=1e-6, atol=1e-9)
        history_dict = _history(history.history)
        plots.training_curves(history_dict, staging / "curves.png")
        plots.confusion(metrics, staging / "confusion.png")
        meta = ArtifactMeta(
            version=version,
            created_at=created,
            labels=tuple(ROUTES),
            data_hash=data_hash,
            counts=TrainCounts(
                rows=len(dataset),
                train=len(train_idx),
                validation=len(val_idx),
                train_by_route={r: int(c) for r, c in zip(ROUTES, counts, strict=True)},
                dropped=dict(dataset.dropped),
            ),
            balance=balance_report,
            model=ModelSettings.from_dict(config.to_dict()),
            options={k: v for k, v in asdict(options).items() if k != "model"},
            metrics=Metrics(validation=metrics),
            thresholds=thresholds,
            history=history_dict,
            epochs_run=len(history_dict["loss"]),
            train_seconds=round(time.monotonic() - started, 1),
            trigger=trigger,
            extra={**({"categories": categories} if categories else {}),
                   **({"linear": {"temperature": linear_report["temperature"],
                                  "arm_temperature": linear_report["arm_temperature"],
                                  "coverage_floor": linear_report["coverage_floor"], "ngrams": len(linear.ngrams),
                                  "widths": list(linear.ngram_range)}}
                      if linear is not None else {})},
        )
        write_meta(staging, meta)
        final = model_dir / version
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if make_current:
        set_current(model_dir, version)
    _say(progress, f"saved {final} in {meta.train_seconds} s" + (" (now the current model)" if make_current else ""))
    return TrainResult(version, final, meta)


def _fit_linear(dataset: Dataset, train_idx: list[int], val_idx: list[int], y_train: np.ndarray, y_val: np.ndarray,
                row_weights: np.ndarray, network_val: np.ndarray) -> tuple[LinearArm, np.ndarray, dict[str, Any]]:
    """(the linear arm fitted on the training rows' raw text, the validation rows' served probabilities, a report).

    The average of the two arms gets a temperature of its own, fitted on the validation rows like the network's:
    neither arm saw those rows. The report gives each arm's validation macro-F1 and the average's, so meta.json
    says what each arm adds (each arm's probabilities calibrated, as the average reads them)."""
    texts = dataset.texts
    val_texts = [texts[i] for i in val_idx]
    linear = LinearArm.fit([texts[i] for i in train_idx], y_train, len(ROUTES), row_weights)
    # The arm is calibrated on the validation rows before the average, as the network is: an average of
    # log-probabilities lets the more extreme arm decide, and uncalibrated the two are extreme for reasons of their
    # own (the regularised regression flat on rows like its training rows, the network sharp on a corpus it
    # separates). Calibrated on the same held-out rows, each gets the say its held-out confidence earns
    # (docs/quality.md, "The arms' calibration"). Folded into the coefficients, so serving is unchanged.
    untempered_val, coverage = linear.read(val_texts)  # one pass over the rows' windows (coverage: below)
    arm_temperature = calibration.fit_temperature(np.exp(untempered_val), y_val)
    linear = linear.tempered(arm_temperature)
    # The tempered arm's log-probabilities without a second pass: log-softmax ignores the shift that separates
    # log-probabilities from logits, so log_softmax(log_p / T) = log_softmax(logits / T).
    linear_val = log_softmax(untempered_val / arm_temperature)
    # The review thresholds are measured on rows like these: a ticket with a smaller share of known n-grams than 99 %
    # of them is outside what they measured, and goes to review whatever its confidence (docs/quality.md, "Knowing
    # when not to decide").
    coverage_floor = round(float(np.percentile(coverage, COVERAGE_PERCENTILE)), 4)
    temperature = calibration.fit_temperature(blend(network_val, linear_val, 1.0), y_val)
    served = blend(network_val, linear_val, temperature)
    gold = [ROUTES[i] for i in y_val]
    arms = {"network": score(gold, network_val)["macro_f1"], "linear": score(gold, np.exp(linear_val))["macro_f1"],
            "averaged": score(gold, served)["macro_f1"]}
    return linear, served, {"temperature": temperature, "arm_temperature": arm_temperature,
                            "coverage_floor": coverage_floor, "arms": arms}


def _arms_figures(report: dict[str, Any]) -> str:
    if not report:
        return ""
    arms = report["arms"]
    return (f" (network alone {arms['network']:.4f}, linear arm alone {arms['linear']:.4f}; averaged with "
            f"temperature {report['temperature']:g})")


def _history(history: dict[str, list[Any]]) -> dict[str, list[float]]:
    """Keras's per-epoch logs as floats. With two heads Keras names the route's accuracy `route_accuracy`; it is
    also kept under `accuracy`, the key meta.json and the training curves have always had."""
    out = {k: [float(v) for v in vs] for k, vs in history.items()}
    for prefix in ("", "val_"):
        if f"{prefix}route_accuracy" in out and f"{prefix}accuracy" not in out:
            out[f"{prefix}accuracy"] = out[f"{prefix}route_accuracy"]
    return out
