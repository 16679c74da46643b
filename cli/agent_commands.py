"""Agent commands: create-agent (asks for the password), create-token (prints a bearer token for the API),
deactivate-agent / activate-agent, revoke-tokens and list-agents. Each command is one unit of work."""

from __future__ import annotations

import argparse
import getpass
import json
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


def cmd_deactivate_agent(args: argparse.Namespace, settings: Settings) -> int:
    """Lock an agent out at once: sign-in refused, every web session ended, every API token revoked."""
    from core.agents import deactivate_agent, require_agent

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agent = require_agent(session, args.email)
        changed = deactivate_agent(session, agent)
        email = agent.email
    print(f"deactivated agent {email}: signed out everywhere, API tokens revoked" if changed
          else f"agent {email} was already deactivated")
    return 0


def cmd_activate_agent(args: argparse.Namespace, settings: Settings) -> int:
    """Let a deactivated agent sign in again with their password; their old tokens stay revoked."""
    from core.agents import activate_agent, require_agent

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agent = require_agent(session, args.email)
        changed = activate_agent(agent)
        email = agent.email
    print(f"activated agent {email}; `furiwake create-token {email}` for a new API token" if changed
          else f"agent {email} was already active")
    return 0


def cmd_revoke_tokens(args: argparse.Namespace, settings: Settings) -> int:
    """Revoke every API token of an agent (a lost laptop); their web sign-in is untouched."""
    from core.agents import require_agent, revoke_tokens

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agent = require_agent(session, args.email)
        revoked = revoke_tokens(session, agent)
        email = agent.email
    print(f"revoked {revoked} token(s) of {email}")
    return 0


def cmd_list_agents(args: argparse.Namespace, settings: Settings) -> int:
    """Every agent: e-mail, active or not, live tokens, name; --json for scripts."""
    from core.agents import list_agents

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agents = list_agents(session)
    if args.json:
        print(json.dumps([{"id": a.id, "email": a.email, "name": a.name, "active": a.active,
                           "live_tokens": a.live_tokens, "created_at": a.created_at.isoformat()}
                          for a in agents], ensure_ascii=False, indent=2))  # fmt: skip
        return 0
    if not agents:
        print("no agents yet: `furiwake create-agent EMAIL`")
        return 0
    width = max(len(a.email) for a in agents)
    for a in agents:
        state = "active" if a.active else "deactivated"
        print(f"{a.email:<{width}}  {state:<11}  {a.live_tokens} token(s)  {a.name or ''}".rstrip())
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

    p = sub.add_parser("deactivate-agent", help="lock an agent out: sessions ended, API tokens revoked, at once")
    p.add_argument("email")
    p.set_defaults(func=cmd_deactivate_agent)

    p = sub.add_parser("activate-agent", help="let a deactivated agent sign in again")
    p.add_argument("email")
    p.set_defaults(func=cmd_activate_agent)

    p = sub.add_parser("revoke-tokens", help="revoke every API token of an agent")
    p.add_argument("email")
    p.set_defaults(func=cmd_revoke_tokens)

    p = sub.add_parser("list-agents", help="list agents, active or not, with their live API tokens")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_list_agents)
