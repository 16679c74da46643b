"""Scores of a set of predictions: the figures `furiwake evaluate`, training and the benchmarks all report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from core.routes import ROUTES

MAX_THRESHOLD = 0.99  # a route whose target is never reached sends all but its surest tickets to review


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |accuracy − confidence| over equal-width confidence bins (Guo et al. 2017)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total, ece = len(confidences), 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidences > low) & (confidences <= high)
        if in_bin.any():
            ece += in_bin.sum() / total * abs(correct[in_bin].mean() - confidences[in_bin].mean())
    return float(ece)


def score(gold: Sequence[str], probabilities: np.ndarray, labels: Sequence[str] = ROUTES) -> dict[str, Any]:
    """Accuracy, macro-F1, per-route P/R/F1, confusion matrix (rows gold, columns predicted) and ECE."""
    labels = list(labels)
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, zero_division=0
    )
    confidences = probabilities.max(axis=1)
    correct = np.array([g == p for g, p in zip(gold, predicted, strict=True)])
    return {
        "n": len(gold),
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)),
        "per_route": {
            route: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for route, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion": {"labels": labels, "matrix": confusion_matrix(gold, predicted, labels=labels).tolist()},
        "ece": expected_calibration_error(confidences, correct),
    }


def category_scores(gold: Sequence[str | None], probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Fine-category accuracy and macro-F1 over the rows that have a fine label (None: none, not scored).

    Macro-F1 averages over the gold categories present: a label of the head that these rows never carry (an
    agent's rare category) would otherwise count as a zero and say nothing about the rows scored.
    """
    rows = [i for i, g in enumerate(gold) if g is not None]
    if not rows:
        return {"n": 0, "accuracy": None, "macro_f1": None}
    labels = list(labels)
    truth = [str(gold[i]) for i in rows]
    predicted = [labels[j] for j in probabilities[rows].argmax(axis=1)]
    return {
        "n": len(rows),
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0)),
    }


def review_thresholds(
    gold: Sequence[str], probabilities: np.ndarray, target_precision: float, labels: Sequence[str] = ROUTES
) -> dict[str, float]:
    """Per route, the lowest confidence at which predictions of that route reach `target_precision` on held-out rows
    (calibrated probabilities, training.calibration); MAX_THRESHOLD where no confidence reaches it.

    Tickets predicted below their route's threshold go to `needs_review` instead of straight to a queue.
    """
    labels = list(labels)
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    gold_index = np.array([labels.index(g) for g in gold])
    thresholds = {}
    for index, route in enumerate(labels):
        mask = predicted == index
        chosen = MAX_THRESHOLD
        for t in np.arange(0.34, MAX_THRESHOLD, 0.01):
            kept = mask & (confidence >= t)
            if kept.sum() >= 5 and (gold_index[kept] == index).mean() >= target_precision:
                chosen = float(t)
                break
        thresholds[route] = round(chosen, 2)
    return thresholds


def without_review(probabilities: np.ndarray, thresholds: dict[str, float],
                   labels: Sequence[str] = ROUTES, familiar: np.ndarray | None = None) -> np.ndarray:
    """Per row, whether its top route's probability reaches that route's review threshold (and, where `familiar`
    is given, Predictor.scores' flag, the text is like the rows the thresholds were measured on), as
    worker.routing decides."""
    predicted = probabilities.argmax(axis=1)
    confident = probabilities.max(axis=1) >= np.array([thresholds.get(labels[i], 0.0) for i in predicted])
    return confident if familiar is None else confident & familiar


def auto_routed(gold: Sequence[str], probabilities: np.ndarray, thresholds: dict[str, float],
                labels: Sequence[str] = ROUTES, familiar: np.ndarray | None = None) -> dict[str, float]:
    """What the review thresholds do to a set: the share routed without review and the accuracy among those."""
    labels = list(labels)
    predicted = probabilities.argmax(axis=1)
    confident = without_review(probabilities, thresholds, labels, familiar)
    correct = np.array([labels[p] == g for p, g in zip(predicted, gold, strict=True)])
    return {"share": float(confident.mean()) if len(gold) else 0.0,
            "accuracy": float(correct[confident].mean()) if confident.any() else float("nan")}


def format_report(metrics: dict[str, Any]) -> str:
    """The human-readable table printed by `furiwake evaluate`."""
    lines = [
        f"n={metrics['n']}  accuracy={metrics['accuracy']:.4f}  macro-F1={metrics['macro_f1']:.4f}  "
        f"ECE={metrics['ece']:.4f}",
        "",
        f"{'route':10s} {'precision':>9s} {'recall':>7s} {'f1':>7s} {'support':>8s}",
    ]
    for route, row in metrics["per_route"].items():
        lines.append(
            f"{route:10s} {row['precision']:9.4f} {row['recall']:7.4f} {row['f1']:7.4f} {row['support']:8d}"
        )
    fine = metrics.get("category")
    if fine and fine.get("n"):
        lines += ["", f"fine category: n={fine['n']}  accuracy={fine['accuracy']:.4f}  "
                      f"macro-F1={fine['macro_f1']:.4f}"]
    labels = metrics["confusion"]["labels"]
    lines += ["", "confusion (rows: gold, columns: predicted)", " " * 10 + "".join(f"{x:>9s}" for x in labels)]
    for label, row in zip(labels, metrics["confusion"]["matrix"], strict=True):
        lines.append(f"{label:10s}" + "".join(f"{v:9d}" for v in row))
    return "\n".join(lines)
