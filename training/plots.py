"""The prototype's two training plots (accuracy and loss, training vs validation) and a confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402


def training_curves(history: dict[str, list[float]], path: Path) -> None:
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history["loss"]) + 1)
    acc_ax.plot(epochs, history["accuracy"], "o-", label="training")
    acc_ax.plot(epochs, history["val_accuracy"], "s-", label="validation")
    acc_ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
    loss_ax.plot(epochs, history["loss"], "o-", label="training")
    loss_ax.plot(epochs, history["val_loss"], "s-", label="validation")
    loss_ax.set(title="Loss", xlabel="epoch", ylabel="loss")
    for ax in (acc_ax, loss_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion(metrics: dict[str, Any], path: Path, title: str = "Validation confusion matrix") -> None:
    labels = metrics["confusion"]["labels"]
    matrix = metrics["confusion"]["matrix"]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="gold", title=title)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
