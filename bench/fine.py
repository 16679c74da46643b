"""Fine-category quality: the model `make run` trains (data/tickets.tsv, default options), scored on
../shared/datasets/ja_dev, beside same-run references.

    python bench/fine.py [--epochs N] [--json]

ja_dev is for scoring only: nothing is trained, tuned or chosen on it. Rows:
- the shipped model's category head (18 corpus categories) and its route head;
- the same model trained without fine labels (route head only, as before the category head): what the second head
  costs or gives the route;
- the reference baseline (../shared/BASELINE.md: char_wb 1–3 TF-IDF + balanced logistic regression) trained on the
  LSTM's own training split, once for the categories and once for the routes.

`train_corpus_model` and `predict_rows` are the pieces other benchmarks reuse to get a trained version and its
predictions (route and category) for a data set's rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "data" / "tickets.tsv"
JA_DEV = ROOT.parent / "shared" / "datasets" / "ja_dev" / "ja_dev.tsv"


def train_corpus_model(model_dir: Path, epochs: int = 20, fine_labels: bool = True) -> Path:
    """Train on the bundled corpus as `make run` does (TrainOptions defaults) into `model_dir`; the version's path.
    `fine_labels=False` drops the categories, which trains a route-only model."""
    from training.datasets import Dataset, load
    from training.train import TrainOptions, train

    corpus = load(CORPUS)
    if not fine_labels:
        corpus = Dataset([replace(e, category=None) for e in corpus.examples], corpus.dropped)
    return train(corpus, model_dir, TrainOptions(epochs=epochs), progress=None, make_current=False).path


def predict_rows(version_path: Path, texts: list[str]) -> list[Any]:
    """serving.predictor.Prediction (route, confidence, category, category confidence) for each text, through the
    compiled serving path, as the worker predicts."""
    from serving.predictor import Predictor

    return Predictor(version_path, warm_up=False).predict(texts)


def _figures(gold: list[str], predicted: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(gold, predicted)),
            "macro_f1": float(f1_score(gold, predicted, labels=sorted(set(gold)), average="macro", zero_division=0))}


def _ids(path: Path) -> list[str]:
    """The id column of a seed-format TSV, in row order (load() keeps the order and every row of ja_dev)."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t", 1)[0] for line in lines if line.strip()]


def baseline(train_texts: list[str], train_labels: list[str], test_texts: list[str]) -> list[str]:
    """Exactly BASELINE.md's model, for whichever labels it is given."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
    classifier = LogisticRegression(C=10, max_iter=2000, class_weight="balanced")
    classifier.fit(vectorizer.fit_transform(train_texts), train_labels)
    return [str(label) for label in classifier.predict(vectorizer.transform(test_texts))]


def run(epochs: int, predictions_out: Path | None = None) -> list[dict[str, Any]]:
    from training.datasets import load
    from training.train import TrainOptions, split

    dev = load(JA_DEV)
    gold_routes = dev.routes
    gold_categories = [str(c) for c in dev.categories]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for fine, label in ((True, "LSTM, route + category heads (shipped)"), (False, "LSTM, route head only")):
            started = time.monotonic()
            path = train_corpus_model(Path(tmp) / label.split(",")[1].strip().replace(" ", "-"), epochs, fine)
            seconds = time.monotonic() - started
            predictions = predict_rows(path, dev.texts)
            row = {"model": label, "train_s": round(seconds, 1),
                   "route": _figures(gold_routes, [p.route for p in predictions])}
            if fine:
                row["category"] = _figures(gold_categories, [str(p.category) for p in predictions])
                if predictions_out is not None:  # for bench/suggestions.py --predictions
                    ids = _ids(JA_DEV)
                    if len(ids) != len(predictions):
                        raise SystemExit(f"{JA_DEV}: {len(ids)} ids for {len(predictions)} rows loaded")
                    predictions_out.write_text("".join(f"{ident}\t{p.category}\n"
                                                       for ident, p in zip(ids, predictions, strict=True)),
                                               encoding="utf-8")
            rows.append(row)
            print(f"  {label}: {row} ", file=sys.stderr, flush=True)

    corpus = load(CORPUS).deduplicated()
    train_idx, _ = split(corpus, TrainOptions().validation_fraction, TrainOptions().seed)
    texts = [corpus.examples[i].text for i in train_idx]
    rows.append({
        "model": "baseline TF-IDF char 1-3 + LR (same training split)",
        "route": _figures(gold_routes, baseline(texts, [corpus.examples[i].route for i in train_idx], dev.texts)),
        "category": _figures(gold_categories, baseline(
            texts, [str(corpus.examples[i].category) for i in train_idx], dev.texts)),
    })
    for row in rows:
        row.update({"train_rows": len(train_idx), "test_rows": len(dev)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--predictions-out", type=Path,
                        help="write the shipped model's category per ja_dev row (id<TAB>category) for"
                             " bench/suggestions.py --predictions")
    args = parser.parse_args()
    if not JA_DEV.is_file():
        print(f"{JA_DEV} is missing: this benchmark scores on the shared ja_dev set", file=sys.stderr)
        return 2
    print("data/tickets.tsv → ja_dev (scoring only)", file=sys.stderr, flush=True)
    rows = run(args.epochs, args.predictions_out)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    print(f"{'model':54s} {'category acc':>12s} {'cat. macro-F1':>13s} {'route acc':>9s} {'route macro-F1':>14s}")
    for r in rows:
        fine = r.get("category")
        cells = f"{fine['accuracy']:12.4f} {fine['macro_f1']:13.4f}" if fine else f"{'—':>12s} {'—':>13s}"
        print(f"{r['model']:54s} {cells} {r['route']['accuracy']:9.4f} {r['route']['macro_f1']:14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
