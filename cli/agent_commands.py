"""Agent commands: create-agent (asks for the password; --admin), create-token (prints a bearer token for the API),
deactivate-agent / activate-agent, revoke-tokens, list-agents, `agent role` (admin or agent), and `agent routes /
available / away / cap` for automatic assignment. Each command is one unit of work.

No role is checked here: whoever runs the CLI holds the server (and its database). The one rule kept is core's:
the last active admin is neither demoted nor deactivated (core.agents.refuse_removing_last_admin)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING, Any

from cli.database import existing_database
from cli.errors import CLIError
from core.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.orm import Agent

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
    """An agent who signs in to /agent; the password comes from a prompt (twice) or one line of stdin. --admin
    makes an admin; without it the helpdesk's first agent is an admin and the others are agents."""
    from core.agents import create_agent

    password = _read_password(args)
    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agent = create_agent(session, args.email, password, name=args.name, role="admin" if args.admin else None)
        email, agent_id, role = agent.email, agent.id, agent.role
    print(f"created agent {email} (id {agent_id}, {role}); `furiwake create-token {email}` for the API")
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
    """Every agent: e-mail, active or not, role, live tokens, name; --json for scripts."""
    from core.agents import list_agents

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agents = list_agents(session)
    if args.json:
        print(json.dumps([{"id": a.id, "email": a.email, "name": a.name, "role": a.role, "active": a.active,
                           "live_tokens": a.live_tokens, "created_at": a.created_at.isoformat()}
                          for a in agents], ensure_ascii=False, indent=2))  # fmt: skip
        return 0
    if not agents:
        print("no agents yet: `furiwake create-agent EMAIL`")
        return 0
    width = max(len(a.email) for a in agents)
    for a in agents:
        state = "active" if a.active else "deactivated"
        print(f"{a.email:<{width}}  {state:<11}  {a.role:<5}  {a.live_tokens} token(s)  {a.name or ''}".rstrip())
    return 0


# --- `furiwake agent …`: what automatic assignment needs to know (core/assignment.py; docs/agents.md) --------------

def _standing(session: Session, agent: Agent, settings: Settings) -> str:
    """One line: the agent's routes, availability, cap and open tickets."""
    from core import assignment

    routes = ", ".join(assignment.routes_of(session, agent.id)) or "no route"
    state = "available" if agent.available else "away"
    if not agent.active:
        state += " (deactivated: gets no tickets)"
    cap = f"cap {agent.max_open}" if agent.max_open is not None else f"cap {settings.assignment.max_open} (default)"
    return f"{agent.email}: {routes}; {state}; {cap}; {assignment.open_counts(session, [agent.id])[agent.id]} open"


def _assign_now(session: Session, agent: Agent, settings: Settings) -> str:
    """Waiting tickets of the agent's routes go out at once (to whoever may take them), not at the next pass."""
    from core import assignment

    done = assignment.assign_waiting(session, settings.assignment, routes=assignment.routes_of(session, agent.id))
    return f"\n{len(done)} waiting ticket(s) assigned" if done else ""


def cmd_agent_routes(args: argparse.Namespace, settings: Settings) -> int:
    """Set the routes (skills) an agent is assigned tickets of; with none given, show the agent's standing."""
    from core import assignment
    from core.agents import require_agent

    if args.clear and args.routes:
        raise CLIError("give routes or --clear, not both")
    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agent = require_agent(session, args.email)
        after = ""
        if args.routes or args.clear:
            assignment.set_routes(session, agent, args.routes)
            after = _assign_now(session, agent, settings)
        line = _standing(session, agent, settings) + after
    print(line)
    return 0


def cmd_agent_availability(args: argparse.Namespace, settings: Settings) -> int:
    """available: new tickets may come (waiting ones come at once); away: none come, the open ones stay theirs."""
    from core import assignment
    from core.agents import require_agent

    available = args.agent_command == "available"
    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agent = require_agent(session, args.email)
        assignment.set_available(agent, available)
        after = _assign_now(session, agent, settings) if available else ""
        line = _standing(session, agent, settings) + after
    print(line)
    return 0


def cmd_agent_role(args: argparse.Namespace, settings: Settings) -> int:
    """Make an agent an admin (manages agents, models, rules, webhooks) or an agent (works tickets); the last
    active admin cannot be demoted. Their open sessions see the new role at their next request."""
    from core.agents import require_agent, set_role

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agent = require_agent(session, args.email)
        changed = set_role(session, agent, args.role)
        email = agent.email
    print(f"{email} is now an {args.role}" if changed else f"{email} was already an {args.role}")
    return 0


def _cap(raw: str) -> int | None:
    if raw.strip().lower() == "default":
        return None
    try:
        return int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or `default`, got {raw!r}") from None


def cmd_agent_cap(args: argparse.Namespace, settings: Settings) -> int:
    """The most open tickets assignment gives the agent (`default`: ASSIGNMENT_MAX_OPEN); tickets they already
    have above a lowered cap stay theirs."""
    from core import assignment
    from core.agents import require_agent

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        agent = require_agent(session, args.email)
        assignment.set_cap(agent, args.cap)
        after = _assign_now(session, agent, settings)
        line = _standing(session, agent, settings) + after
    print(line)
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("create-agent", help="add an agent who signs in to /agent (asks for the password)")
    p.add_argument("email")
    p.add_argument("--name", help="name shown to other agents (default: the e-mail address)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    p.add_argument("--admin", action="store_true",
                   help="make an admin (manages agents, models, rules, webhooks); the first agent always is one")
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

    p = sub.add_parser("agent", help="an agent's role, and routes, availability and cap for automatic assignment")
    agent_sub = p.add_subparsers(dest="agent_command", required=True)
    p = agent_sub.add_parser("role", help="make an agent an admin, or an agent again")
    p.add_argument("email")
    p.add_argument("role", choices=("admin", "agent"))
    p.set_defaults(func=cmd_agent_role)
    p = agent_sub.add_parser("routes", help="set the routes an agent gets tickets of (none given: show them)")
    p.add_argument("email")
    p.add_argument("routes", nargs="*", metavar="ROUTE", help="Account, Payment or Other")
    p.add_argument("--clear", action="store_true", help="no route: the agent gets no tickets automatically")
    p.set_defaults(func=cmd_agent_routes)
    p = agent_sub.add_parser("available", help="the agent takes new tickets again")
    p.add_argument("email")
    p.set_defaults(func=cmd_agent_availability)
    p = agent_sub.add_parser("away", help="the agent gets no new tickets (their open ones stay theirs)")
    p.add_argument("email")
    p.set_defaults(func=cmd_agent_availability)
    p = agent_sub.add_parser("cap", help="the most open tickets the agent is given (or `default`)")
    p.add_argument("email")
    p.add_argument("cap", type=_cap, metavar="N", help="a number from 1, or `default` (ASSIGNMENT_MAX_OPEN)")
    p.set_defaults(func=cmd_agent_cap)
