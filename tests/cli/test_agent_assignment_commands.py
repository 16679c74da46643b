"""`furiwake agent routes / available / away / cap` through the real console script, on a database the test reads
back: the settings are stored, waiting tickets go out as soon as an agent can take them, bad input is one line."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core import assignment
from core.config import Settings
from core.orm import Agent, Ticket, utcnow
from core.runtime import Runtime
from core.tickets import NewTicket, store_queued
from tests.support.backends import both_backends

FURIWAKE = str(Path(sys.executable).with_name("furiwake"))
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def runtime(make_settings: Callable[..., Settings], database_url: str) -> Iterator[Runtime]:
    built = Runtime.build(make_settings(database_url=database_url))
    yield built
    built.dispose()


@pytest.fixture
def furiwake(tmp_path: Path, database_url: str) -> Run:
    env = {"PATH": "/usr/bin:/bin", "FURIWAKE_HOME": str(tmp_path), "DATABASE_URL": database_url,
           "ASSIGNMENT_MAX_OPEN": "5"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([FURIWAKE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    return run


@pytest.fixture
def hana(runtime: Runtime) -> int:
    with runtime.unit_of_work() as session:
        agent = Agent(email="hana@example.jp", name="Hana", password_hash="-", active=True)
        session.add(agent)
        session.flush()
        return agent.id


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert fragment in result.stderr


def _waiting_ticket(runtime: Runtime, route: str) -> uuid.UUID:
    with runtime.unit_of_work() as session:
        ticket, _ = store_queued(session, NewTicket(channel="api", body="返金してください"))
        stored = session.get(Ticket, ticket.id)
        assert stored is not None
        stored.status, stored.route, stored.routed_at = "routed", route, utcnow()
        return ticket.id


def _assignee(runtime: Runtime, ticket_id: uuid.UUID) -> int | None:
    with runtime.sessions() as session:
        return session.scalar(select(Ticket.assigned_agent_id).where(Ticket.id == ticket_id))


@both_backends
def test_routes_are_set_shown_and_cleared(runtime: Runtime, furiwake: Run, hana: int) -> None:
    shown = _ok(furiwake("agent", "routes", "HANA@example.jp"))
    assert shown == "hana@example.jp: no route; available; cap 5 (default); 0 open"
    assert _ok(furiwake("agent", "routes", "hana@example.jp", "payment", "Account")) == (
        "hana@example.jp: Account, Payment; available; cap 5 (default); 0 open")
    with runtime.sessions() as session:
        assert assignment.routes_of(session, hana) == ["Account", "Payment"]
    assert _ok(furiwake("agent", "routes", "hana@example.jp", "--clear")).startswith("hana@example.jp: no route;")
    with runtime.sessions() as session:
        assert assignment.routes_of(session, hana) == []


def test_away_holds_new_tickets_back_and_available_hands_out_what_waited(runtime: Runtime, furiwake: Run,
                                                                         hana: int) -> None:
    assert _ok(furiwake("agent", "away", "hana@example.jp")).endswith("no route; away; cap 5 (default); 0 open")
    ticket_id = _waiting_ticket(runtime, "Payment")
    _ok(furiwake("agent", "routes", "hana@example.jp", "Payment"))  # in the route now, but away
    assert _assignee(runtime, ticket_id) is None
    assert _ok(furiwake("agent", "available", "hana@example.jp")).splitlines() == [
        "hana@example.jp: Payment; available; cap 5 (default); 1 open", "1 waiting ticket(s) assigned"]
    assert _assignee(runtime, ticket_id) == hana


def test_the_cap_is_stored_and_a_raised_cap_takes_waiting_tickets(runtime: Runtime, furiwake: Run,
                                                                   hana: int) -> None:
    assert _ok(furiwake("agent", "cap", "hana@example.jp", "1")).endswith("no route; available; cap 1; 0 open")
    first, second = _waiting_ticket(runtime, "Other"), _waiting_ticket(runtime, "Other")
    routed = _ok(furiwake("agent", "routes", "hana@example.jp", "Other")).splitlines()
    assert routed == ["hana@example.jp: Other; available; cap 1; 1 open", "1 waiting ticket(s) assigned"]
    assert (_assignee(runtime, first), _assignee(runtime, second)) == (hana, None)  # the older one first
    assert _ok(furiwake("agent", "cap", "hana@example.jp", "default")).splitlines() == [
        "hana@example.jp: Other; available; cap 5 (default); 2 open", "1 waiting ticket(s) assigned"]
    with runtime.sessions() as session:
        agent = session.get(Agent, hana)
        assert agent is not None and agent.max_open is None


def test_bad_input_is_one_line_and_a_non_zero_exit(furiwake: Run, hana: int) -> None:
    _one_line_error(furiwake("agent", "routes", "hana@example.jp", "Billing"), "unknown route Billing")
    _one_line_error(furiwake("agent", "routes", "hana@example.jp", "Other", "--clear"), "not both")
    _one_line_error(furiwake("agent", "away", "nobody@example.jp"), "no agent with e-mail nobody@example.jp")
    _one_line_error(furiwake("agent", "cap", "hana@example.jp", "0"), "the cap must be at least 1")
    not_a_number = furiwake("agent", "cap", "hana@example.jp", "ten")
    assert not_a_number.returncode == 2 and "expected a number or `default`" in not_a_number.stderr
    assert "Traceback" not in not_a_number.stderr
