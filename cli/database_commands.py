"""Commands that create what they need: migrate (the database) and run (migrate, train if needed, serve)."""

from __future__ import annotations

import argparse
from typing import Any

from cli.errors import database_label
from core.config import Settings

Subparsers = Any  # argparse's _SubParsersAction is private


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from core.migrate import upgrade

    upgrade(settings.database_url)
    print(f"database at head: {database_label(settings)} (FURIWAKE_HOME={settings.home})")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from cli.supervisor import run

    return run(settings, train_if_missing=not args.no_train)


def register(sub: Subparsers) -> None:
    p = sub.add_parser("migrate", help="create the database or upgrade it to the newest schema")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("run", help="migrate, train if needed, then run API + worker + beat until Ctrl-C")
    p.add_argument("--no-train", action="store_true")
    p.set_defaults(func=cmd_run)
