"""`furiwake` console script: builds the parser from the command groups and dispatches (redash's cli/ layout).

  model_commands     train, evaluate, predict, models, retrain, model rollback, model prune
  agent_commands     create-agent, create-token, agent role / routes / available / away / cap
  webhook_commands   webhook add, webhook list, webhook remove
  database_commands  migrate, run

Every failure the user can cause (missing file, malformed row, unknown format, no model yet, no database, a
database that cannot be reached, input that ended) ends in one line on stderr and a non-zero exit code, never a
traceback. A command that needs the database builds one Runtime and works in one unit of work.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# TensorFlow's own variable, read by TensorFlow's C++ core when it is first imported (train, evaluate, predict, and
# the worker and trainer `furiwake run` starts, which inherit it): only its errors reach the terminal, not its
# start-up lines. Set before anything can import TensorFlow, and only if the user has not chosen a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

from cli import agent_commands, database_commands, model_commands, webhook_commands  # noqa: E402
from cli.errors import CLIError, describe_database_error  # noqa: E402
from core.artifacts import NoModelError  # noqa: E402
from core.config import ConfigError, Settings  # noqa: E402
from core.logs import configure_logging  # noqa: E402
from core.routes import RouteMapError  # noqa: E402
from training.datasets import DatasetError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="furiwake", description="Self-hosted support-ticket router.")
    sub = parser.add_subparsers(dest="command", required=True)
    model_commands.register(sub)
    database_commands.register(sub)
    agent_commands.register(sub)
    webhook_commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"furiwake {args.command}: error: {message}", file=sys.stderr)
        return 1

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return fail(str(exc))
    configure_logging(settings)
    try:
        return int(args.func(args, settings))
    except (DatasetError, NoModelError, RouteMapError, ConfigError, CLIError, ValueError) as exc:
        return fail(str(exc))
    except SQLAlchemyError as exc:
        return fail(describe_database_error(exc, settings))
    except EOFError:
        return fail("the input ended before the command had what it needed")
    except OSError as exc:
        return fail(f"{exc.strerror or type(exc).__name__}: {exc.filename or exc}")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
