"""Temperature scaling (Guo et al. 2017): one number that makes the route head's confidence mean what it says.

A network trained with cross-entropy is over-confident on text unlike its training rows; dividing its logits by a
temperature T > 1, fitted on held-out rows by minimising their negative log-likelihood, spreads the probabilities
without changing any argmax. The review thresholds are then chosen on the calibrated probabilities, so a stated
target precision holds on data the model did not train on.

T is folded into the route head itself (softmax(xW/T + b/T) = softmax of a Dense layer with W/T and b/T), so the
saved model.keras and serving.npz give calibrated probabilities and serving needs no extra step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

BOUNDS = (0.05, 20.0)


def scaled(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax probabilities re-tempered: softmax(log p / T), the same as dividing the head's logits by T."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, gold_index: np.ndarray) -> float:
    picked = probabilities[np.arange(len(gold_index)), gold_index]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, gold_index: np.ndarray) -> float:
    """The T within BOUNDS that minimises the held-out rows' NLL (one-dimensional, so a bounded scalar search)."""
    result = minimize_scalar(lambda t: negative_log_likelihood(scaled(probabilities, t), gold_index),
                             bounds=BOUNDS, method="bounded", options={"xatol": 1e-3})
    return round(float(result.x), 4)


def fold_into_head(head: Any, temperature: float) -> None:
    """Divide a Dense layer's kernel and bias by T, in place: its logits (and the softmax over them, or over their
    average with other members') come out tempered."""
    kernel, bias = head.get_weights()
    head.set_weights([kernel / temperature, bias / temperature])
