"""Route quality on writers the model never saw: the LSTM against the reference baseline, same rows, several seeds.

    python bench/quality.py [--cases ja,rounds,writers,offtopic,banking,crossdomain] [--seeds 3]
                            [--arms shipped,lstm]
                            [--epochs N]
                            [--set FIELD=VALUE] [--ensemble] [--json]

Cases (train → test):
  ja        data/tickets.tsv → ../shared/datasets/ja_dev (another writer; scoring only, never trained or chosen on)
  rounds    the corpus's writing round 1 → its later rounds (the writer split used to choose between models:
            round 2 was written after round 1 to add what it lacked, so a model that memorised round 1's hands fails)
  writers   every round but round 4 → round 4 (thirteen writers who worked apart and never read the earlier rounds,
            each for one kind of customer: the closest the corpus comes to tickets by people the model never read)
  offtopic  the `ja` case's models on bench/data/offtopic.tsv (written separately, evaluation only; truth Other):
            the share sent to Account or Payment without review
  banking   Banking77 train + Bitext 20k → Banking77 test
  crossdomain  English from one domain and writer to another, both ways: Banking77 train → Bitext 8k (retail
            customer service), and Bitext 20k → Banking77 test (a bank's customers)
Arms: `shipped` is the default model: the network (LSTM with its character n-gram arm) averaged with the linear
arm (serving.linear); `lstm` has no n-gram arm inside the network (--no-wide). Each model with a linear arm is also
scored arm by arm on the same tickets ("its network arm alone", "its linear arm alone"): what each adds to the
average. `--set linear=false` trains the network alone. Each LSTM model is
calibrated and gets its review thresholds on its own validation split (training.train), as in production. The
baseline (../shared/BASELINE.md) trains on exactly the LSTM's training rows of the same seed.

Reported per model: mean ± standard deviation over the seeds, and the range, of accuracy, macro-F1, ECE, the share
routed without review (below its route's threshold, or `unfamiliar`: n-gram coverage under the floor measured on
the validation rows, whose share is reported too), and the accuracy among those; and the model's own validation
macro-F1, whose spread over
seeds is the retraining noise RETRAIN_MIN_GAIN must stand above (docs/quality.md).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "datasets"
CORPUS = ROOT / "data" / "tickets.tsv"
OFFTOPIC = ROOT / "bench" / "data" / "offtopic.tsv"
LAST_OF_ROUND_1 = 4022  # data/README.md: round 1 is FW00001–FW04022, later rounds follow
ROUND_4 = range(6489, 7995)  # FW06489–FW07994, by thirteen separate writers; rounds 5–6 (FW07995 on) train with 1–3
ARMS = {"shipped": "shipped (LSTM + n-grams, linear arm)", "lstm": "LSTM only (--no-wide)"}
CASES = ("ja", "rounds", "writers", "offtopic", "banking", "crossdomain")
BASELINE = "baseline TF-IDF char 1-3 + LR"
SEEDS = (20261124, 1, 2, 3, 4)


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


def model_config(arm: str, overrides: dict[str, Any]) -> Any:
    from training.model import ModelConfig

    return replace(ModelConfig(wide=arm == "shipped"), **overrides)


def parse_overrides(pairs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--set wide_units=128 --set label_smoothing=0.1` → (ModelConfig fields, TrainOptions fields), typed like
    the defaults; for trying a lever against the shipped settings on the same seeds."""
    from training.model import ModelConfig
    from training.train import TrainOptions

    model: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        for target, defaults in ((model, ModelConfig()), (train, TrainOptions())):
            if hasattr(defaults, key):
                kind = type(getattr(defaults, key))
                target[key] = raw.lower() in ("1", "true", "yes") if kind is bool else kind(raw)
                break
        else:
            raise SystemExit(f"--set {pair}: no such ModelConfig or TrainOptions field")
    return model, train


def probability_scores(routes: list[str], probabilities: np.ndarray, thresholds: dict[str, float],
                       familiar: np.ndarray | None = None) -> dict[str, float]:
    """`familiar`: Predictor.scores' flag; an unfamiliar ticket goes to review as in worker.routing."""
    from training.metrics import auto_routed, score

    metrics = score(routes, probabilities)
    kept = auto_routed(routes, probabilities, thresholds, familiar=familiar)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "ece": metrics["ece"],
            "auto_share": kept["share"], "auto_accuracy": kept["accuracy"]}


def arm_rows(case: str, model: str, seed: int, routes: list[str], arms: dict[str, np.ndarray]
             ) -> list[dict[str, Any]]:
    """A model with a linear arm (serving.linear): each arm scored alone on the same tickets, which is what each adds
    to the served average. The review thresholds belong to the average, so only accuracy, macro-F1 and ECE."""
    from training.metrics import score

    if "linear" not in arms:
        return []
    rows = []
    for arm in ("network", "linear"):
        metrics = score(routes, arms[arm])
        rows.append({"case": case, "model": f"{model}: its {arm} arm alone", "seed": seed,
                     "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "ece": metrics["ece"]})
    return rows


def offtopic_scores(probabilities: np.ndarray, thresholds: dict[str, float],
                    familiar: np.ndarray | None = None) -> dict[str, float]:
    """Of questions whose truth is Other: the share sent to Account or Payment without review (and at all)."""
    from core.routes import ROUTES
    from training.metrics import without_review

    wrong = np.array([ROUTES[i] != "Other" for i in probabilities.argmax(axis=1)])
    confident = without_review(probabilities, thresholds, familiar=familiar)
    return {"to_account_or_payment": float(wrong.mean()), "without_review": float((wrong & confident).mean())}


def ensemble_rows(name: str, kept: dict[str, list[tuple[np.ndarray, np.ndarray | None, dict[str, float]]]],
                  test_set: Any) -> list[dict[str, Any]]:
    """Per arm, the seeds' models as one: their calibrated probabilities averaged. Each seed validated on a split
    of its own, so no rows are unseen by all of them: the ensemble's thresholds are the members' mean (an
    approximation of what one shared validation split would give)."""
    rows = []
    for arm, members in kept.items():
        if len(members) < 2:
            continue
        label = f"{ARMS[arm]}, {len(members)} seeds averaged"
        thresholds = {route: float(np.mean([m[2].get(route, 0.0) for m in members])) for route in members[0][2]}
        test = np.mean([m[0] for m in members], axis=0)
        rows.append({"case": name, "model": label, "seed": -1,
                     **probability_scores(test_set.routes, test, thresholds)})
        offtopics = [m[1] for m in members if m[1] is not None]
        if offtopics:
            offtopic = np.mean(offtopics, axis=0)
            rows.append({"case": "offtopic", "model": label, "seed": -1, **offtopic_scores(offtopic, thresholds)})
    return rows


def run_case(name: str, train_set: Any, test_set: Any, arms: list[str], seeds: list[int], epochs: int,
             offtopic: Any = None, overrides: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
             ensemble: bool = False) -> list[dict[str, Any]]:
    from serving.predictor import Predictor
    from training.train import TrainOptions, split, train

    train_set = train_set.deduplicated()
    rows = []
    kept: dict[str, list[tuple[np.ndarray, np.ndarray | None, dict[str, float]]]] = defaultdict(list)
    for seed in seeds:
        for arm in arms:
            options = TrainOptions(epochs=epochs, seed=seed, model=model_config(arm, overrides[0]), **overrides[1])
            started = time.monotonic()
            with tempfile.TemporaryDirectory() as tmp:
                result = train(train_set, Path(tmp), options, progress=None)
                predictor = Predictor(result.path, warm_up=False)
                test_scores = predictor.scores(test_set.texts)
                test_probabilities = test_scores.routes
                offtopic_scored = predictor.scores(offtopic.texts) if offtopic is not None else None
                offtopic_probabilities = offtopic_scored.routes if offtopic_scored is not None else None
                scores = probability_scores(test_set.routes, test_probabilities, predictor.thresholds,
                                            test_scores.familiar)
                if test_scores.familiar is not None:  # the share sent to review as unlike the training rows
                    scores["unfamiliar"] = float(1.0 - test_scores.familiar.mean())
                rows += arm_rows(name, ARMS[arm], seed, test_set.routes, predictor.arms(test_set.texts))
                if ensemble:
                    kept[arm].append((test_probabilities, offtopic_probabilities, dict(predictor.thresholds)))
                validation = result.meta.metrics.validation
                rows.append({"case": name, "model": ARMS[arm], "seed": seed, **scores,
                             "validation_macro_f1": validation["macro_f1"],
                             "temperature": validation["calibration"]["temperature"],
                             "train_s": round(time.monotonic() - started, 1)})
                if offtopic_scored is not None:
                    rows.append({"case": "offtopic", "model": ARMS[arm], "seed": seed,
                                 **offtopic_scores(offtopic_scored.routes, predictor.thresholds,
                                                   offtopic_scored.familiar)})
            print(f"  seed {seed} {ARMS[arm]}: {rows[-1 if offtopic is None else -2]}", file=sys.stderr, flush=True)
        train_idx, _ = split(train_set, TrainOptions().validation_fraction, seed)
        texts = [train_set.examples[i].text for i in train_idx]
        routes = [train_set.examples[i].route for i in train_idx]
        rows.append({"case": name, "model": BASELINE, "seed": seed,
                     **baseline_scores(texts, routes, test_set.texts, test_set.routes)})
    return rows + ensemble_rows(name, kept, test_set)


def corpus_rounds(path: Path, held_out: range = range(LAST_OF_ROUND_1 + 1, 10**6)) -> tuple[Any, Any]:
    """(the rows to train on, the rows held out) of the bundled corpus, by the id column's number (FW00001 …):
    round 1 and the later rounds by default."""
    from training.datasets import Dataset, load

    corpus = load(path)
    ids = [line.split("\t", 1)[0] for line in path.read_text(encoding="utf-8").split("\n")]
    trained, scored = Dataset([]), Dataset([])
    for example in corpus.examples:
        line = int(example.source.rsplit(":", 1)[1])
        number = int(re.sub(r"\D", "", ids[line - 1]))
        (scored if number in held_out else trained).examples.append(example)
    return trained, scored


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (case, model): mean, standard deviation, min and max of each figure over the seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["case"], row["model"])].append(row)
    out = []
    for (case, model), members in groups.items():
        figures = {}
        for key in members[0]:
            if key in ("case", "model", "seed") or not isinstance(members[0][key], float):
                continue
            values = np.array([m[key] for m in members], dtype=float)
            figures[key] = {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values)),
                            "min": float(np.nanmin(values)), "max": float(np.nanmax(values))}
        out.append({"case": case, "model": model, "seeds": len(members), **figures})
    return out


def main() -> int:
    from training.datasets import load

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="ja,rounds,offtopic,banking", help=f"of {', '.join(CASES)}")
    parser.add_argument("--seeds", type=int, default=3, help=f"how many seeds (at most {len(SEEDS)})")
    parser.add_argument("--arms", default="shipped,lstm")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a ModelConfig or TrainOptions field (repeatable)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the seed-format corpus (default: %(default)s)")
    parser.add_argument("--ensemble", action="store_true",
                        help="also score each arm's seeds as one model (their probabilities averaged)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    cases, arms = args.cases.split(","), args.arms.split(",")
    if not set(arms) <= set(ARMS) or not set(cases) <= set(CASES):
        parser.error(f"arms are {', '.join(ARMS)}; cases are {', '.join(CASES)}")
    seeds = list(SEEDS[:max(1, min(args.seeds, len(SEEDS)))])
    rows: list[dict[str, Any]] = []
    offtopic = load(OFFTOPIC) if "offtopic" in cases else None
    if "ja" in cases or offtopic is not None:
        print(f"{args.corpus} → ja_dev", file=sys.stderr, flush=True)
        rows += run_case("corpus → ja_dev", load(args.corpus), load(SHARED / "ja_dev" / "ja_dev.tsv"),
                         arms, seeds, args.epochs, offtopic, overrides, args.ensemble)
    if "rounds" in cases:
        print("corpus round 1 → later rounds", file=sys.stderr, flush=True)
        rows += run_case("corpus round 1 → rounds 2+", *corpus_rounds(args.corpus), arms, seeds, args.epochs,
                         overrides=overrides, ensemble=args.ensemble)
    if "writers" in cases:
        print("corpus, every round but 4 → round 4 (thirteen separate writers)", file=sys.stderr, flush=True)
        rows += run_case("corpus, all rounds but 4 → round 4", *corpus_rounds(args.corpus, ROUND_4), arms, seeds,
                         args.epochs, overrides=overrides, ensemble=args.ensemble)
    if "banking" in cases:
        print("Banking77 train + Bitext 20k → Banking77 test", file=sys.stderr, flush=True)
        english = load(SHARED / "banking77" / "train.csv", "banking77")
        english.extend(load(SHARED / "bitext_customer_support_20k" / "TrainingdatasetBitextsample.csv", "bitext"))
        rows += run_case("Banking77+Bitext20k → Banking77 test", english,
                         load(SHARED / "banking77" / "test.csv", "banking77"), arms, seeds, args.epochs,
                         overrides=overrides, ensemble=args.ensemble)
    if "crossdomain" in cases:
        banking = load(SHARED / "banking77" / "train.csv", "banking77")
        bitext_8k = load(SHARED / "bitext_customer_service_8k" / "Bitext_Sample_Customer_Service_Training_Dataset.csv",
                         "bitext")
        bitext_20k = load(SHARED / "bitext_customer_support_20k" / "TrainingdatasetBitextsample.csv", "bitext")
        print("Banking77 train → Bitext 8k; Bitext 20k → Banking77 test", file=sys.stderr, flush=True)
        rows += run_case("Banking77 → Bitext 8k", banking, bitext_8k, arms, seeds, args.epochs, overrides=overrides,
                         ensemble=args.ensemble)
        rows += run_case("Bitext 20k → Banking77 test", bitext_20k, load(SHARED / "banking77" / "test.csv",
                                                                          "banking77"),
                         arms, seeds, args.epochs, overrides=overrides, ensemble=args.ensemble)
    table = summary(rows)
    if args.json:
        print(json.dumps({"runs": rows, "summary": table}, ensure_ascii=False))
        return 0
    for row in table:
        figures = "  ".join(f"{key} {v['mean']:.3f}±{v['std']:.3f} [{v['min']:.3f}–{v['max']:.3f}]"
                            for key, v in row.items() if isinstance(v, dict) and key != "train_s")
        print(f"{row['case']:34s} {row['model']:32s} seeds {row['seeds']}  {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
