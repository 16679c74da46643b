"""`furiwake` console script: train, evaluate, predict, retrain, models, model rollback, migrate, run.

Every failure the user can cause (missing file, malformed row, unknown format, no model yet) ends in one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from core.artifacts import NoModelError, resolve
from core.config import ConfigError, Settings
from core.routes import RouteMap, RouteMapError
from training.datasets import FORMATS, Dataset, DatasetError, guess_format, load

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT / "data" / "tickets.tsv"


class CLIError(Exception):
    """An error to report in one line (exit code 1)."""


def _load_all(paths: Sequence[Path], fmt: str | None, route_map: RouteMap) -> Dataset:
    dataset = Dataset([])
    for path in paths:
        dataset.extend(load(path, fmt or guess_format(path), route_map))
    return dataset


def _route_map(settings: Settings) -> RouteMap:
    return RouteMap.load(settings.route_map_file)


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
        model=ModelConfig(wide=not args.no_wide, bidirectional=args.bidirectional),
    )
    out = args.out or settings.model_dir
    result = train(dataset, out, options, progress=lambda m: print(m, flush=True), make_current=not args.no_current)
    if args.json:
        print(json.dumps({"version": result.version, "path": str(result.path),
                          **{k: result.meta["metrics"]["validation"][k] for k in ("accuracy", "macro_f1", "n")}}))
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    dataset = _load_all(args.data, args.format, _route_map(settings))
    if not len(dataset):
        raise CLIError("no usable rows to evaluate")
    path = resolve(args.model, settings.model_dir)
    from serving.predictor import Predictor  # TensorFlow loads only once the input is known to be good
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
    from serving.predictor import Predictor

    texts = args.text if args.text != ["-"] else [sys.stdin.read()]
    if not any(t.strip() for t in texts):
        raise CLIError("nothing to classify: the text is empty")
    predictor = Predictor(resolve(args.model, settings.model_dir), warm_up=False)
    for text, prediction in zip(texts, predictor.predict(texts), strict=True):
        if args.json:
            print(json.dumps({"route": prediction.route, "confidence": prediction.confidence,
                              "probabilities": prediction.probabilities, "model_version": predictor.version},
                             ensure_ascii=False))
        else:
            scores = "  ".join(f"{k} {v:.3f}" for k, v in prediction.probabilities.items())
            print(f"{prediction.route}\t{prediction.confidence:.3f}\t({scores})\t{text[:60]!r}")
    return 0


def _registry(settings: Settings):  # type: ignore[no-untyped-def]
    """A session factory on the configured database for the registry commands (engine disposed afterwards)."""
    from contextlib import contextmanager

    from sqlalchemy.exc import SQLAlchemyError

    from core.db import make_engine, make_session_factory

    @contextmanager
    def factory():  # type: ignore[no-untyped-def]
        engine = make_engine(settings.database_url)
        try:
            yield make_session_factory(engine)
        except SQLAlchemyError as exc:
            raise CLIError(f"database error ({type(exc).__name__}); is it migrated (`furiwake migrate`)?") from None
        finally:
            engine.dispose()

    return factory()


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """The registry's versions, newest first, with status, evaluation figures, reason and live override rate."""
    from core import registry

    with _registry(settings) as sessions:
        registry.sync(sessions, settings.model_dir)
        with sessions() as session:
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

    options = TrainOptions(epochs=args.epochs, validation_fraction=INNER_VALIDATION) if args.epochs else None
    with _registry(settings) as sessions:
        outcome = retrain(settings, sessions, trigger="cli", force=args.force, options=options,
                          progress=None if args.json else (lambda m: print(m, flush=True)))
    if args.json:
        print(json.dumps(outcome.as_dict(), ensure_ascii=False))
    elif outcome.decision in ("skipped", "unchanged"):
        print(f"{outcome.decision}: {outcome.reason}")
    return 0


def cmd_model_rollback(args: argparse.Namespace, settings: Settings) -> int:
    """Make the previous champion (or --to VERSION) the champion again; running workers switch within seconds."""
    from core import registry

    with _registry(settings) as sessions:
        registry.sync(sessions, settings.model_dir)
        old, new = registry.rollback(sessions, settings.model_dir, to=args.to, actor="cli")
    if args.json:
        print(json.dumps({"champion": new, "previous": old}))
    else:
        print(f"the champion is now {new} (was {old}); workers switch to it within seconds")
    return 0


def cmd_model_prune(args: argparse.Namespace, settings: Settings) -> int:
    """Delete the files of old model versions, keeping the champion and the --keep newest others."""
    from core import registry

    keep = settings.retrain.keep_versions if args.keep is None else args.keep
    with _registry(settings) as sessions:
        registry.sync(sessions, settings.model_dir)
        pruned = registry.prune(sessions, settings.model_dir, keep, dry_run=args.dry_run)
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


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from core.migrate import upgrade

    upgrade(settings.database_url)
    print(f"database at head: {settings.database_url.split('@')[-1]}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from cli.supervisor import run

    return run(settings, train_if_missing=not args.no_train)


def _agent_transaction(settings: Settings):  # type: ignore[no-untyped-def]
    """A unit of work on the configured database for the agent commands (same engine handling as _registry)."""
    from contextlib import contextmanager

    from core.db import transaction

    @contextmanager
    def unit():  # type: ignore[no-untyped-def]
        with _registry(settings) as factory, transaction(factory) as session:
            yield session

    return unit()


def cmd_create_agent(args: argparse.Namespace, settings: Settings) -> int:
    """An agent who signs in to /agent; the password comes from a prompt (twice) or one line of stdin."""
    import getpass

    from core.agents import check_password_rules, create_agent

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        check_password_rules(password)
        if getpass.getpass("Password again: ") != password:
            raise CLIError("the two passwords differ")
    with _agent_transaction(settings) as session:
        agent = create_agent(session, args.email, password, name=args.name)
        print(f"created agent {agent.email} (id {agent.id}); `furiwake create-token {agent.email}` for the API")
    return 0


def cmd_create_token(args: argparse.Namespace, settings: Settings) -> int:
    """A bearer token for the JSON API, printed alone on stdout (only its SHA-256 is stored: it cannot be shown
    again)."""
    from core.agents import find_agent, issue_token

    with _agent_transaction(settings) as session:
        agent = find_agent(session, args.email)
        if agent is None or not agent.active:
            raise CLIError(f"no active agent with e-mail {args.email.strip().lower()} (furiwake create-agent)")
        token = issue_token(session, agent)
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="furiwake", description="Self-hosted support-ticket router.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model (default: the bundled corpus into MODEL_DIR, made current)")
    p.add_argument("--data", type=Path, action="append", help="training file (repeatable); default data/tickets.tsv")
    p.add_argument("--format", choices=FORMATS, help="file format (default: guessed from the file)")
    p.add_argument("--out", type=Path, help="model directory (default: MODEL_DIR)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--balance", choices=("weights", "cap", "none"), default="weights")
    p.add_argument("--cap", type=int, help="rows per route with --balance cap (default: the rarest route's count)")
    p.add_argument("--seed", type=int, default=20261124)
    p.add_argument("--no-wide", action="store_true", help="LSTM only, without the character n-gram arm")
    p.add_argument("--bidirectional", action="store_true", help="BiLSTM instead of LSTM")
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

    p = sub.add_parser("migrate", help="upgrade the database to the newest schema")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("run", help="migrate, train if needed, then run API + worker + beat until Ctrl-C")
    p.add_argument("--no-train", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("create-agent", help="add an agent who signs in to /agent (asks for the password)")
    p.add_argument("email")
    p.add_argument("--name", help="name shown to other agents (default: the e-mail address)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    p.set_defaults(func=cmd_create_agent)

    p = sub.add_parser("create-token", help="print a new API token for an agent (shown once)")
    p.add_argument("email")
    p.set_defaults(func=cmd_create_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        return int(args.func(args, settings))
    except (DatasetError, NoModelError, RouteMapError, ConfigError, CLIError, ValueError) as exc:
        print(f"furiwake {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
