"""Model commands: train, evaluate, predict (no database), and models, retrain, model rollback/prune (the registry).

The registry commands also upload the registered versions whose files are only in this machine's MODEL_DIR
(registry.publish_local: versions trained before the database kept model files), so other machines can serve them.

TensorFlow loads only inside the commands that need it, once their input is known to be good.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cli.database import existing_database
from cli.errors import CLIError
from core.artifacts import resolve
from core.config import DEFAULT_TARGET_PRECISION, Settings
from core.routes import RouteMap
from training.datasets import FORMATS, Dataset, guess_format, load

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "data" / "tickets.tsv"

Subparsers = Any  # argparse's _SubParsersAction is private


def _load_all(paths: Sequence[Path], fmt: str | None, route_map: RouteMap) -> Dataset:
    dataset = Dataset([])
    for path in paths:
        dataset.extend(load(path, fmt or guess_format(path), route_map))
    return dataset


def _route_map(settings: Settings) -> RouteMap:
    return RouteMap.load(settings.route_map_file)


def _precision(text: str) -> float:
    """argparse type of --target-precision: a number within 0.5..0.999 (argparse turns the error into one line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.5 <= value <= 0.999:
        raise argparse.ArgumentTypeError(f"{value} is not within 0.5..0.999")
    return value


def _members(text: str) -> int:
    """argparse type of --members: a whole number within 1..8."""
    if not text.isdigit() or not 1 <= int(text) <= 8:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number within 1..8")
    return int(text)


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from training.model import ModelConfig
    from training.train import TrainOptions, train

    paths = args.data or [DEFAULT_CORPUS]
    dataset = _load_all(paths, args.format, _route_map(settings))
    dropped = sum(dataset.dropped.values())
    print(f"loaded {len(dataset)} rows from {', '.join(map(str, paths))}; dropped {dropped} unusable "
          f"({', '.join(f'{k}: {v}' for k, v in dataset.dropped.items()) or 'none'})", flush=True)
    options = TrainOptions(
        epochs=args.epochs, balance=args.balance, cap=args.cap, seed=args.seed,
        target_precision=args.target_precision,
        model=ModelConfig(wide=not args.no_wide, bidirectional=args.bidirectional, linear=not args.no_linear,
                          **({"members": args.members} if args.members is not None else {})),
    )
    out = args.out or settings.model_dir
    result = train(dataset, out, options, progress=lambda m: print(m, flush=True), make_current=not args.no_current)
    if args.json:
        print(json.dumps({"version": result.version, "path": str(result.path),
                          **{k: result.meta.metrics.validation[k] for k in ("accuracy", "macro_f1", "n")}}))
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    dataset = _load_all(args.data, args.format, _route_map(settings))
    if not len(dataset):
        raise CLIError("no usable rows to evaluate")
    path = resolve(args.model, settings.model_dir)
    from serving.predictor import Predictor
    from training.metrics import format_report, score

    predictor = Predictor(path, warm_up=False)
    metrics = score(dataset.routes, predictor.probabilities(dataset.texts), predictor.labels)
    metrics["model_version"] = predictor.version
    metrics["dropped"] = dict(dataset.dropped)
    if args.json:
        print(json.dumps(metrics, ensure_ascii=False))
    else:
        print(f"model {predictor.version} on {', '.join(map(str, args.data))}")
        print(format_report(metrics))
    return 0


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    texts = args.text if args.text != ["-"] else [sys.stdin.read()]
    if not any(t.strip() for t in texts):
        raise CLIError("nothing to classify: the text is empty")
    path = resolve(args.model, settings.model_dir)
    from serving.predictor import Predictor

    predictor = Predictor(path, warm_up=False)
    for text, prediction in zip(texts, predictor.predict(texts), strict=True):
        if args.json:
            print(json.dumps({"route": prediction.route, "confidence": prediction.confidence,
                              "probabilities": prediction.probabilities, "category": prediction.category,
                              "category_confidence": prediction.category_confidence,
                              "familiar": prediction.familiar, "model_version": predictor.version},
                             ensure_ascii=False))
        else:
            scores = "  ".join(f"{k} {v:.3f}" for k, v in prediction.probabilities.items())
            fine = f"\t{prediction.category} {prediction.category_confidence:.3f}" if prediction.category else ""
            unfamiliar = "" if prediction.familiar else "\tunfamiliar text: review"
            print(f"{prediction.route}\t{prediction.confidence:.3f}\t({scores}){fine}{unfamiliar}\t{text[:60]!r}")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """The registry's versions, newest first, with status, evaluation figures, reason and live override rate."""
    from core import registry

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        registry.sync(session, settings.model_dir)
        registry.publish_local(session, settings.model_dir)
        rates = registry.override_rates(session)
        rows = [registry.as_dict(row, rates.get(row.version)) for row in registry.versions(session)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    elif not rows:
        print(f"no model versions yet ({settings.model_dir} has no CURRENT): run `furiwake train` or "
              "`furiwake retrain`")
    else:
        def figure(value: float | None) -> str:
            return "—" if value is None else f"{value:.4f}"

        for row in rows:
            rate = "—" if row["override_rate"] is None else f"{row['override_rate']:.1%}"
            print(f"{'*' if row['status'] == 'champion' else ' '} {row['version']}  {row['status']:9s} "
                  f"{row['trigger']:8s} macro-F1 {figure(row['macro_f1'])} vs champion "
                  f"{figure(row['champion_macro_f1'])}  validation {figure(row['validation_macro_f1'])}  "
                  f"routed {row['routed']}, re-routed {rate}")
            if row["reason"]:
                print(f"    {row['reason'].splitlines()[-1] if row['status'] != 'rejected' else row['reason']}")
    return 0


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    """One retrain in this process (the same function the trainer's Celery task runs); prints the decision."""
    from training.retrain import INNER_VALIDATION, retrain
    from training.train import TrainOptions

    options = TrainOptions(epochs=args.epochs, validation_fraction=INNER_VALIDATION,
                           target_precision=settings.retrain.target_precision) if args.epochs else None
    with existing_database(settings) as runtime:
        outcome = retrain(runtime, trigger="cli", force=args.force, options=options,
                          progress=None if args.json else (lambda m: print(m, flush=True)))
    if args.json:
        print(json.dumps(outcome.as_dict(), ensure_ascii=False))
    elif outcome.decision in ("skipped", "unchanged"):
        print(f"{outcome.decision}: {outcome.reason}")
    return 0


def cmd_model_rollback(args: argparse.Namespace, settings: Settings) -> int:
    """Make the previous champion (or --to VERSION) the champion again; running workers switch within seconds."""
    from core import registry

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        registry.sync(session, settings.model_dir)
        registry.publish_local(session, settings.model_dir)
        old, new = registry.rollback(session, settings.model_dir, to=args.to, actor="cli")
    if args.json:
        print(json.dumps({"champion": new, "previous": old}))
    else:
        print(f"the champion is now {new} (was {old}); workers on every machine switch to it within seconds")
    return 0


def cmd_model_prune(args: argparse.Namespace, settings: Settings) -> int:
    """Delete the files of old model versions (in the database and here; every worker drops its cached copy),
    keeping the champion and the --keep newest others."""
    from core import registry

    keep = settings.retrain.keep_versions if args.keep is None else args.keep
    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        registry.sync(session, settings.model_dir)
        pruned = registry.prune(session, settings.model_dir, keep, dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"pruned": pruned, "dry_run": args.dry_run, "kept": keep}))
    elif not pruned:
        print(f"nothing to prune: at most {keep} versions besides the champion have files")
    else:
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} the files of {len(pruned)} versions (kept the champion and the {keep} newest others):")
        for version in pruned:
            print(f"  {version}")
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="train a model (default: the bundled corpus into MODEL_DIR, made current)")
    p.add_argument("--data", type=Path, action="append", help="training file (repeatable); default data/tickets.tsv")
    p.add_argument("--format", choices=FORMATS, help="file format (default: guessed from the file)")
    p.add_argument("--out", type=Path, help="model directory (default: MODEL_DIR)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--balance", choices=("weights", "cap", "none"), default="weights")
    p.add_argument("--cap", type=int, help="rows per route with --balance cap (default: the rarest route's count)")
    p.add_argument("--seed", type=int, default=20261124)
    p.add_argument("--target-precision", type=_precision, default=DEFAULT_TARGET_PRECISION, metavar="P",
                   help="per route, the precision the review thresholds keep among tickets routed without review "
                        "(default: %(default)s)")
    p.add_argument("--no-wide", action="store_true", help="LSTM only, without the character n-gram arm")
    p.add_argument("--no-linear", action="store_true",
                   help="serve the network alone, without averaging it with the linear arm (docs/quality.md)")
    p.add_argument("--bidirectional", action="store_true", help="BiLSTM instead of LSTM")
    p.add_argument("--members", type=_members, metavar="N",
                   help="independent networks trained together and averaged (default: the model's, "
                        "docs/quality.md); 1 trains and serves fastest")
    p.add_argument("--no-current", action="store_true", help="do not make the new version the current model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a model on a labelled file")
    p.add_argument("--data", type=Path, action="append", required=True)
    p.add_argument("--format", choices=FORMATS)
    p.add_argument("--model", type=Path, help="a version directory (default: the current model)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="route one or more texts ('-' reads stdin)")
    p.add_argument("text", nargs="+")
    p.add_argument("--model", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("models", help="list the registered model versions: status, metrics, reasons, override rate")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("retrain", help="retrain on the corpus + agents' corrections now; promote only if better")
    p.add_argument("--json", action="store_true", help="print the decision as JSON (no progress output)")
    p.add_argument("--force", action="store_true", help="train even if nothing new arrived since the last retrain")
    p.add_argument("--epochs", type=int, help="at most this many epochs (default: RETRAIN_EPOCHS)")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("model", help="change which model version serves")
    model_sub = p.add_subparsers(dest="model_command", required=True)
    p = model_sub.add_parser("rollback", help="make the previous champion (or --to VERSION) serve again")
    p.add_argument("--to", metavar="VERSION", help="a registered version to make the champion instead")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_rollback)
    p = model_sub.add_parser("prune", help="delete the files of old versions (the champion is always kept)")
    p.add_argument("--keep", type=int, metavar="N",
                   help="versions kept besides the champion (default: RETRAIN_KEEP_VERSIONS)")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_prune)
