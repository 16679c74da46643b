"""Route quality: the LSTM against the reference baseline (../shared/BASELINE.md), same rows, same run.

    python bench/quality.py [--only a|b] [--epochs N] [--json]

(a) bundled corpus → ../shared/datasets/ja_dev (evaluation only: never trained or tuned on)
(b) Banking77 train + Bitext 20k → Banking77 test
Both models train on exactly the same rows: the LSTM's training split (its other 20 % only drives early stopping).
Rows: the shipped LSTM (+ character n-gram arm), the LSTM alone (--no-wide), and the baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "datasets"


def baseline_scores(train_texts: list[str], train_routes: list[str], test_texts: list[str],
                    test_routes: list[str]) -> dict[str, float]:
    """Exactly BASELINE.md: char_wb 1–3 TF-IDF over the raw text + balanced logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
    classifier = LogisticRegression(C=10, max_iter=2000, class_weight="balanced")
    classifier.fit(vectorizer.fit_transform(train_texts), train_routes)
    predicted = classifier.predict(vectorizer.transform(test_texts))
    return {"accuracy": float(accuracy_score(test_routes, predicted)),
            "macro_f1": float(f1_score(test_routes, predicted, average="macro"))}


def lstm_scores(train_set, test_set, wide: bool, epochs: int) -> tuple[dict[str, float], list[int], float]:
    from serving.predictor import Predictor
    from training.metrics import score
    from training.model import ModelConfig
    from training.train import TrainOptions, split, train

    options = TrainOptions(epochs=epochs, model=ModelConfig(wide=wide))
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(train_set, Path(tmp), options, progress=None)
        predictor = Predictor(result.path, warm_up=False)
        metrics = score(test_set.routes, predictor.probabilities(test_set.texts))
    train_idx, _ = split(train_set.deduplicated(), options.validation_fraction, options.seed)
    return ({"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "ece": metrics["ece"]},
            train_idx, time.monotonic() - started)


def run_case(name: str, train_set, test_set, epochs: int) -> list[dict[str, object]]:
    train_set = train_set.deduplicated()
    rows = []
    for wide, label in ((True, "LSTM + char n-grams (shipped)"), (False, "LSTM only (--no-wide)")):
        scores, train_idx, seconds = lstm_scores(train_set, test_set, wide, epochs)
        rows.append({"case": name, "model": label, "train_rows": len(train_idx), "test_rows": len(test_set),
                     **scores, "train_s": round(seconds, 1)})
        print(f"  {label}: {scores} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    texts = [train_set.examples[i].text for i in train_idx]
    routes = [train_set.examples[i].route for i in train_idx]
    rows.append({"case": name, "model": "baseline TF-IDF char 1-3 + LR", "train_rows": len(texts),
                 "test_rows": len(test_set), **baseline_scores(texts, routes, test_set.texts, test_set.routes)})
    return rows


def main() -> int:
    from training.datasets import load

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("a", "b"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    if args.only in (None, "a"):
        print("(a) bundled corpus → ja_dev", file=sys.stderr, flush=True)
        rows += run_case("(a) data/tickets.tsv → ja_dev", load(ROOT / "data" / "tickets.tsv"),
                         load(SHARED / "ja_dev" / "ja_dev.tsv"), args.epochs)
    if args.only in (None, "b"):
        print("(b) Banking77 train + Bitext 20k → Banking77 test", file=sys.stderr, flush=True)
        english = load(SHARED / "banking77" / "train.csv", "banking77")
        english.extend(load(SHARED / "bitext_customer_support_20k" / "TrainingdatasetBitextsample.csv", "bitext"))
        rows += run_case("(b) Banking77+Bitext20k → Banking77 test", english,
                         load(SHARED / "banking77" / "test.csv", "banking77"), args.epochs)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        print(f"{'case':42s} {'model':32s} {'train':>6s} {'test':>5s} {'accuracy':>9s} {'macro-F1':>9s}")
        for r in rows:
            print(f"{r['case']:42s} {r['model']:32s} {r['train_rows']:6d} {r['test_rows']:5d} "
                  f"{r['accuracy']:9.4f} {r['macro_f1']:9.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
