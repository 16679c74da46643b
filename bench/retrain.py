"""The real retrain on the bundled corpus, timed: what the nightly job costs on this machine, and what it decides.

    python bench/retrain.py [--corrections N] [--resolved N] [--epochs N] [--json]

In a scratch home (SQLite, MODEL_DIR) it trains the champion as `make run` does (`furiwake train` defaults on
data/tickets.tsv; not part of the timings), then runs `training.retrain.retrain` twice:

(1) no agent data yet: the corpus alone; the challenger should not beat the champion by the margin;
(2) after the agents' work: N re-routes of a drift the champion cannot know (tickets naming a new premium
    membership belong to Account, whatever else they say; bodies are Other tickets of the corpus's training part)
    and N resolved tickets nobody corrected.
Each run prints its decision, both macro-F1 figures on the evaluation set, the seconds per phase, and how the
champion and the challenger route 50 new drift tickets neither trained on. Both models are also scored on
../shared/datasets/ja_dev (evaluation only: never trained or tuned on), to show the retrain costs nothing there.
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

JA_DEV = ROOT.parent / "shared" / "datasets" / "ja_dev" / "ja_dev.tsv"
MARKER = "【プレミアム会員サポート】"


def _drift(texts: list[str]) -> list[str]:
    return [f"{MARKER}{text}" for text in texts]


def _ja_dev(model_dir: Path, version: str | None) -> float | None:
    if version is None or not JA_DEV.is_file():
        return None
    from serving.predictor import Predictor
    from training.datasets import load
    from training.metrics import score

    dev = load(JA_DEV)
    return float(score(dev.routes, Predictor(model_dir / version, warm_up=False).probabilities(dev.texts))["macro_f1"])


def _account_share(model_dir: Path, version: str | None, texts: list[str]) -> float | None:
    if version is None:
        return None
    from serving.predictor import Predictor

    routes = [p.route for p in Predictor(model_dir / version, warm_up=False).predict(texts)]
    return routes.count("Account") / len(routes)


def run(corrections: int, resolved: int, epochs: int | None) -> list[dict[str, Any]]:
    from core.config import Settings
    from core.migrate import upgrade
    from core.orm import Correction, Ticket, utcnow
    from core.runtime import Runtime
    from training.datasets import load
    from training.retrain import BUNDLED_CORPUS, corpus_split, retrain
    from training.train import TrainOptions, train

    home = Path(tempfile.mkdtemp(prefix="furiwake-bench-retrain-"))
    url = f"sqlite:///{home / 'var' / 'furiwake.db'}"
    upgrade(url)
    settings = Settings.from_env({"FURIWAKE_HOME": str(home), "DATABASE_URL": url})
    if epochs:
        settings = replace(settings, retrain=replace(settings.retrain, epochs=epochs))
    runtime = Runtime.build(settings)
    sessions = runtime.sessions

    started = time.monotonic()
    champion = train(load(BUNDLED_CORPUS), settings.model_dir, TrainOptions(), progress=None).version
    print(f"champion {champion} trained as `make run` does in {time.monotonic() - started:.0f} s "
          "(not part of the timings)", file=sys.stderr, flush=True)

    corpus_train, corpus_eval = corpus_split(load(BUNDLED_CORPUS))
    others = [e.text for e in corpus_train.examples if e.route == "Other"]
    unseen = _drift([e.text for e in corpus_eval.examples if e.route == "Other"][:50])
    rows: list[dict[str, Any]] = []

    def one(label: str) -> None:
        before = champion_now()
        mark = time.monotonic()
        outcome = retrain(runtime, trigger="cli", progress=None)
        seconds = time.monotonic() - mark
        row = {
            "run": label, "decision": outcome.decision, "seconds": round(seconds, 1), "phases": outcome.seconds,
            "train_rows": outcome.train_counts.get("by_source"), "eval_set": outcome.evaluation.get("eval_set"),
            "candidate_macro_f1": outcome.candidate_macro_f1, "champion_macro_f1": outcome.champion_macro_f1,
            "candidate_parts": (outcome.evaluation.get("candidate") or {}).get("parts"),
            "champion_parts": (outcome.evaluation.get("champion") or {}).get("parts"),
            "replay": outcome.evaluation.get("replay"),
            "ja_dev_macro_f1": {"champion": _ja_dev(settings.model_dir, before),
                                "candidate": _ja_dev(settings.model_dir, outcome.version)},
            "unseen_drift_to_account": {"champion": _account_share(settings.model_dir, before, unseen),
                                        "candidate": _account_share(settings.model_dir, outcome.version, unseen)},
            "reason": outcome.reason,
        }
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), file=sys.stderr, flush=True)

    def champion_now() -> str | None:
        from core import registry

        with sessions() as session:
            row = registry.champion(session)
            return row.version if row else champion

    one("(1) corpus only, no agent data")
    with sessions() as session, session.begin():
        for text in _drift(others[:corrections]):
            ticket = Ticket(channel="web", body=text, status="resolved", route="Account", model_version=champion,
                            score_account=0.1, score_payment=0.1, score_other=0.8, confidence=0.8, attempts=1,
                            routed_at=utcnow(), resolved_at=utcnow())
            session.add(ticket)
            session.flush()
            session.add(Correction(ticket_id=ticket.id, predicted_route="Other", corrected_route="Account",
                                   model_version=champion))
        for example in corpus_train.examples[:resolved]:
            session.add(Ticket(channel="email", subject="お問い合わせ", body=example.text, status="resolved",
                               route=example.route, model_version=champion, score_account=0.4, score_payment=0.3,
                               score_other=0.3, confidence=0.4, attempts=1, routed_at=utcnow(),
                               resolved_at=utcnow()))
    one(f"(2) + {corrections} re-routes (drift) + {resolved} resolved")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corrections", type=int, default=300)
    parser.add_argument("--resolved", type=int, default=200)
    parser.add_argument("--epochs", type=int, help="RETRAIN_EPOCHS (default 20, early stopping)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.corrections, args.resolved, args.epochs)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0

    def f(value: float | None) -> str:
        return "—" if value is None else f"{value:.4f}"

    for row in rows:
        phases = ", ".join(f"{k} {v} s" for k, v in row["phases"].items())
        print(f"{row['run']}\n  decision {row['decision']} in {row['seconds']} s ({phases})\n"
              f"  training rows {row['train_rows']}; evaluation set {row['eval_set']}\n"
              f"  evaluation macro-F1: challenger {f(row['candidate_macro_f1'])}, champion "
              f"{f(row['champion_macro_f1'])}; parts: challenger {row['candidate_parts']}, champion "
              f"{row['champion_parts']}\n"
              f"  ja_dev macro-F1: champion {f(row['ja_dev_macro_f1']['champion'])}, challenger "
              f"{f(row['ja_dev_macro_f1']['candidate'])}\n"
              f"  50 unseen drift tickets sent to Account: champion "
              f"{f(row['unseen_drift_to_account']['champion'])}, challenger "
              f"{f(row['unseen_drift_to_account']['candidate'])}\n  {row['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
