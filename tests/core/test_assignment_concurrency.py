"""core.assignment under contention, on PostgreSQL: several processes assign the same waiting tickets to the same
capped agents at the same instant. No agent ends above their cap, no ticket is assigned twice, every slot is filled,
and no process fails (a deadlock would end one with an error)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import assignment
from core.config import Settings
from core.orm import Agent, Ticket, TicketEvent, utcnow
from core.runtime import Runtime
from core.tickets import NewTicket, store_queued
from tests.support.paths import ROOT

PROCESSES = 6
AGENTS = 30
# Each process: build a Runtime, connect, wait for the common start, then run its passes. `each` assigns one ticket
# per unit of work (in its own shuffled order), `all` runs whole passes over every route, `route` passes over one
# route at a time: agents in two routes are then locked by passes that see different sets of them. `resolve`
# resolves assigned tickets as an agent would (core.agents.resolve, whose hook assigns the freed slot): it holds
# the ticket's lock while it locks agents, the order a deadlock with the passes would need.
SNIPPET = """
import random, sys, time, uuid
from sqlalchemy import select, text
from core import assignment
from core.agents import resolve
from core.assignment import assign_waiting
from core.config import AssignmentSettings, Settings
from core.orm import Ticket
from core.runtime import Runtime

url, home, start_at, style, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
linger = float(sys.argv[6])  # passes go on this long after the start (at least three rounds)
ticket_ids = [uuid.UUID(raw) for raw in sys.argv[7:]]
settings = AssignmentSettings(mode="least_loaded", max_open=1, untouched_minutes=30)
runtime = Runtime.build(Settings.from_env({"DATABASE_URL": url, "FURIWAKE_HOME": home}))
assignment.install(runtime)
with runtime.sessions() as session:
    session.execute(text("SELECT 1"))
rng = random.Random(seed)
rng.shuffle(ticket_ids)
while time.time() < start_at:
    time.sleep(0.001)
done = 0
if style == "resolve":
    deadline = time.time() + 20
    while done < 10 and time.time() < deadline:
        with runtime.unit_of_work() as session:
            held = session.scalars(select(Ticket.id).where(Ticket.assigned_agent_id.is_not(None),
                                                           Ticket.status != "resolved")).all()
            if held:
                done += resolve(session, rng.choice(held), None)[1]
round_ = 0
while style != "resolve" and (round_ < 3 or time.time() < start_at + linger):
    round_ += 1
    if style == "each":
        for ticket_id in ticket_ids:
            with runtime.unit_of_work() as session:
                done += len(assign_waiting(session, settings, ticket_ids=[ticket_id]))
    elif style == "all":
        with runtime.unit_of_work() as session:
            done += len(assign_waiting(session, settings))
    else:
        for route in rng.sample(["Account", "Payment"], 2):
            with runtime.unit_of_work() as session:
                done += len(assign_waiting(session, settings, routes=[route]))
print(done)
"""


def _setup(runtime: Runtime) -> tuple[list[int], list[uuid.UUID]]:
    """AGENTS agents with a cap of 1 (a third in Account, a third in Payment, a third in both) and three times as
    many waiting tickets: enough passes overlap that, without the locks, two of them give one agent two tickets."""
    shapes = [("Account",), ("Payment",), ("Account", "Payment")]
    memberships = [shapes[n % 3] for n in range(AGENTS)]
    agent_ids, ticket_ids = [], []
    with runtime.unit_of_work() as session:
        for n, routes in enumerate(memberships):
            agent = Agent(email=f"agent{n}@example.jp", password_hash="-", active=True, max_open=1)
            session.add(agent)
            session.flush()
            assignment.set_routes(session, agent, routes)
            agent_ids.append(agent.id)
        for n in range(3 * AGENTS):
            ticket, _ = store_queued(session, NewTicket(channel="api", body=f"ticket {n}"))
            ticket_ids.append(ticket.id)
        session.flush()
        for n, ticket_id in enumerate(ticket_ids):
            stored = session.get(Ticket, ticket_id)
            assert stored is not None
            stored.status, stored.route, stored.routed_at = "routed", ("Account", "Payment")[n % 2], utcnow()
    return agent_ids, ticket_ids


def _run(postgres_url: str, home: Path, styles: list[str], ticket_ids: list[uuid.UUID],
         linger: float = 0.0) -> list[tuple[int, str]]:
    """Start one process per style at once; each one's (count it printed, stderr), once all have ended well."""
    start_at = time.time() + 3.0  # every process has imported and connected by then
    children = [
        subprocess.Popen([sys.executable, "-c", SNIPPET, postgres_url, str(home), str(start_at), style, str(seed),
                          str(linger), *map(str, ticket_ids)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed, style in enumerate(styles)
    ]  # fmt: skip
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (_out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-2000:]
        # The resolve hook keeps a failed assignment from failing the resolve (a savepoint) and logs it instead.
        assert "failed" not in err, err[-2000:]
    return [(int(out.strip()), err) for out, err in outputs]


def _open_per_agent(runtime: Runtime) -> Counter[int | None]:
    with runtime.sessions() as session:
        return Counter(session.scalars(select(Ticket.assigned_agent_id).where(
            Ticket.assigned_agent_id.is_not(None), Ticket.status != "resolved")))


def _assigned_events(runtime: Runtime) -> Counter[uuid.UUID]:
    with runtime.sessions() as session:
        return Counter(session.scalars(select(TicketEvent.ticket_id).where(TicketEvent.kind == "assigned")))


@pytest.fixture
def runtime(postgres_url: str, tmp_path: Path) -> Iterator[Runtime]:
    built = Runtime.build(Settings.from_env({"DATABASE_URL": postgres_url, "FURIWAKE_HOME": str(tmp_path)}))
    yield built
    built.dispose()


@pytest.mark.postgres
def test_parallel_processes_never_exceed_a_cap_nor_assign_a_ticket_twice(runtime: Runtime, postgres_url: str,
                                                                        tmp_path: Path) -> None:
    agent_ids, ticket_ids = _setup(runtime)
    outputs = _run(postgres_url, tmp_path, ["each", "all", "route"] * (PROCESSES // 3), ticket_ids)
    assignees, events = _open_per_agent(runtime), _assigned_events(runtime)
    assert all(count == 1 for count in assignees.values()), assignees  # nobody above a cap of 1
    assert set(assignees) == set(agent_ids)  # every slot filled
    assert all(count == 1 for count in events.values()), events  # no ticket assigned twice
    assert sum(count for count, _err in outputs) == len(events) == len(agent_ids)


@pytest.mark.postgres
def test_resolves_and_passes_at_once_keep_the_caps_and_do_not_deadlock(runtime: Runtime, postgres_url: str,
                                                                       tmp_path: Path) -> None:
    agent_ids, ticket_ids = _setup(runtime)
    # The passes go on while the resolvers work, so passes and resolve hooks contend for the same agents.
    outputs = _run(postgres_url, tmp_path, ["all", "route", "each", "resolve", "resolve", "resolve"], ticket_ids,
                   linger=8.0)
    resolved = sum(count for count, _err in outputs[3:])
    assert resolved > 0  # the resolvers found assigned tickets: the two kinds of work overlapped
    assignees, events = _open_per_agent(runtime), _assigned_events(runtime)
    assert all(count == 1 for count in assignees.values()), assignees
    assert all(count == 1 for count in events.values()), events  # a resolved ticket is never given out again
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "resolved")) == resolved
    with runtime.unit_of_work() as session:  # whatever the last resolves freed, one more pass fills
        assignment.assign_waiting(session, runtime.settings.assignment)
    assert _open_per_agent(runtime) == Counter(dict.fromkeys(agent_ids, 1))
