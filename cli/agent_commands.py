"""Agent commands: create-agent (asks for the password) and create-token (prints a bearer token for the API)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from cli.database import existing_database
from cli.errors import CLIError
from core.config import Settings

Subparsers = Any  # argparse's _SubParsersAction is private


def stdin_is_terminal() -> bool:
    """getpass reads a terminal; on anything else it would echo, or read a pipe meant for --password-stdin."""
    return sys.stdin is not None and sys.stdin.isatty()


def _read_password(args: argparse.Namespace) -> str:
    from core.agents import check_password_rules

    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CLIError("no password on stdin: pipe it as one line (echo … | furiwake create-agent EMAIL "
                           "--password-stdin)")
        return line.rstrip("\r\n")
    if not stdin_is_terminal():
        raise CLIError("no terminal to ask for the password on: pipe it as one line with --password-stdin")
    password = getpass.getpass("Password: ")
    check_password_rules(password)
    if getpass.getpass("Password again: ") != password:
        raise CLIError("the two passwords differ")
    return password


def cmd_create_agent(args: argparse.Namespace, settings: Settings) -> int:
    """An agent who signs in to /agent; the password comes from a prompt (twice) or one line of stdin."""
    from core.agents import create_agent

    password = _read_password(args)
    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agent = create_agent(session, args.email, password, name=args.name)
        email, agent_id = agent.email, agent.id
    print(f"created agent {email} (id {agent_id}); `furiwake create-token {email}` for the API")
    return 0


def cmd_create_token(args: argparse.Namespace, settings: Settings) -> int:
    """A bearer token for the JSON API, printed alone on stdout (only its SHA-256 is stored: it cannot be shown
    again)."""
    from core.agents import find_agent, issue_token

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agent = find_agent(session, args.email)
        if agent is None or not agent.active:
            raise CLIError(f"no active agent with e-mail {args.email.strip().lower()} (furiwake create-agent)")
        token = issue_token(session, agent)
    print(token)
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("create-agent", help="add an agent who signs in to /agent (asks for the password)")
    p.add_argument("email")
    p.add_argument("--name", help="name shown to other agents (default: the e-mail address)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    p.set_defaults(func=cmd_create_agent)

    p = sub.add_parser("create-token", help="print a new API token for an agent (shown once)")
    p.add_argument("email")
    p.set_defaults(func=cmd_create_token)
