"""Automatic assignment: a routed ticket goes to an agent of its route (docs/agents.md, "Assignment").

The rules, all here:

- A ticket *waits* when it is `routed`, has a route and has no assignee. Tickets waiting for review are not
  assigned: a person confirms their route first (which makes them `routed`).
- It may go to an agent who works in its route (agent_routes), is active and available, and has fewer open
  (unresolved) tickets than their cap: agents.max_open, else ASSIGNMENT_MAX_OPEN.
- least_loaded picks the one with the fewest open tickets (ties: the one who waited longest for a ticket, then id);
  round_robin picks the one who waited longest (never assigned first, then id).
- Waiting tickets are assigned right after routing (worker.routing), when a ticket is resolved (core.agents), when
  an agent becomes available, and by a periodic task (worker.assign_tasks) that also returns tickets whose
  assignee has not touched them within ASSIGNMENT_UNTOUCHED_MINUTES to the pool and gives them to someone else.
- "Touched": any action of the assignee on the ticket after they got it, found in what those actions already store
  (a TicketEvent by them: reply, re-route, review, resolve, taking it; a Message by them: a reply or a note).
- Every assignment and every return writes a TicketEvent of kind "assigned" whose detail says why, and emits the
  ticket.assigned webhook.

Concurrency (two workers, or a worker and an agent resolving, at once): on PostgreSQL each pass locks the candidate
agents' rows in one statement, in id order (`FOR NO KEY UPDATE`: it does not block the KEY SHARE locks that
inserting a row referring to an agent takes), then counts their open tickets and takes waiting tickets with
`FOR UPDATE SKIP LOCKED`. Holding an agent's row is what makes "count, then assign" safe: whoever assigns to that
agent holds the same lock, and READ COMMITTED gives the count after it a snapshot that includes their commit. The
agents are locked before any ticket is waited for, and tickets are never waited for (SKIP LOCKED: another pass or
an agent has that ticket, and it is not waiting for us), so no two passes wait on each other in a cycle, even one
running inside a resolve that already holds its ticket. Locking rows was chosen over a conditional UPDATE that
re-counts: the count spans many ticket rows, which a single-row condition cannot fence without SERIALIZABLE. On
SQLite there is nothing to lock: every unit of work begins with BEGIN IMMEDIATE (core.db.begin_as_writer), so
passes run one after the other and each counts what the previous one committed.

Services on a Session; they never commit. Settings reach the hooks (after_routing, after_resolve) through the
session, installed per Runtime by install(), as core.webhook_queue.publish_through does for webhooks: a process that
installed nothing (a CLI command, a test) leaves waiting tickets to the periodic task.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core import webhooks
from core.config import AssignmentSettings, Settings
from core.orm import Agent, AgentRoute, Message, Ticket, TicketEvent, utcnow
from core.routes import ROUTES

if TYPE_CHECKING:
    from celery import Celery

    from core.runtime import Runtime

log = logging.getLogger(__name__)

ASSIGN_TASK = "furiwake.assign_tickets"
ASSIGN_EVERY_SECONDS = 60.0
EVENT_KIND = "assigned"
# session.info key: the AssignmentSettings of the Runtime the session came from (install()).
_SETTINGS = "assignment.settings"
# A pass takes at most this many waiting tickets per route: the rest wait for the next pass.
MAX_PER_PASS = 500


class AssignmentError(ValueError):
    """An agent setting that cannot be stored (unknown route, a cap below 1); the message says which."""


@dataclass(frozen=True)
class Assignment:
    """One change of a ticket's assignee: agent_id None means it went back to the pool."""

    ticket_id: uuid.UUID
    agent_id: int | None
    reason: str


# --- settings on the session ------------------------------------------------------------------------------------

def install(runtime: Runtime) -> None:
    """Let the hooks of every session of this Runtime assign (its ASSIGNMENT settings travel in session.info)."""
    info = dict(runtime.sessions.kw.get("info") or {})
    info[_SETTINGS] = runtime.settings.assignment
    runtime.sessions.configure(info=info)


def installed(session: Session) -> AssignmentSettings | None:
    return session.info.get(_SETTINGS)


def add_assignment_sweep(app: Celery, settings: Settings) -> None:
    """The beat entry of the periodic pass (worker.beat); none when ASSIGNMENT=off."""
    if settings.assignment.enabled:
        app.conf.beat_schedule["assign-tickets"] = {"task": ASSIGN_TASK, "schedule": ASSIGN_EVERY_SECONDS}


# --- agents' settings -------------------------------------------------------------------------------------------

def routes_of(session: Session, agent_id: int) -> list[str]:
    chosen = set(session.scalars(select(AgentRoute.route).where(AgentRoute.agent_id == agent_id)))
    return [route for route in ROUTES if route in chosen]


def set_routes(session: Session, agent: Agent, routes: Iterable[str]) -> list[str]:
    """The agent works in exactly these routes from now on (an empty list: none, so they get no tickets)."""
    wanted = list(dict.fromkeys(route.strip() for route in routes))
    by_lower = {route.lower(): route for route in ROUTES}
    unknown = [route for route in wanted if route.lower() not in by_lower]
    if unknown:
        raise AssignmentError(f"unknown route {', '.join(unknown)}; one of {', '.join(ROUTES)}")
    chosen = {by_lower[route.lower()] for route in wanted}
    session.execute(delete(AgentRoute).where(AgentRoute.agent_id == agent.id))
    session.add_all(AgentRoute(agent_id=agent.id, route=route) for route in ROUTES if route in chosen)
    session.flush()
    return [route for route in ROUTES if route in chosen]


def set_available(agent: Agent, available: bool) -> bool:
    """Available (new tickets may come) or away (none come; the tickets they have stay theirs). False: no change."""
    if agent.available == available:
        return False
    agent.available = available
    return True


def set_cap(agent: Agent, cap: int | None) -> None:
    """The agent's own cap of open tickets; None: ASSIGNMENT_MAX_OPEN."""
    if cap is not None and cap < 1:
        raise AssignmentError(f"the cap must be at least 1, got {cap}")
    agent.max_open = cap


def cap_of(agent: Agent, settings: AssignmentSettings) -> int:
    return agent.max_open if agent.max_open is not None else settings.max_open


def open_counts(session: Session, agent_ids: Collection[int]) -> dict[int, int]:
    """Each agent's open (unresolved) tickets, from one GROUP BY over ix_tickets_assigned_status."""
    counts = dict.fromkeys(agent_ids, 0)
    if agent_ids:
        rows = session.execute(
            select(Ticket.assigned_agent_id, func.count())
            .where(Ticket.assigned_agent_id.in_(list(agent_ids)), Ticket.status != "resolved")
            .group_by(Ticket.assigned_agent_id)
        )
        counts.update({int(agent_id): int(count) for agent_id, count in rows if agent_id is not None})
    return counts


# --- assigning --------------------------------------------------------------------------------------------------

@dataclass
class _Candidate:
    agent: Agent
    routes: set[str]
    load: int
    cap: int

    @property
    def free(self) -> int:
        return self.cap - self.load


def _lock_candidates(session: Session, routes: Sequence[str], settings: AssignmentSettings) -> list[_Candidate]:
    """The active, available agents of these routes, their rows locked in id order (one statement, so every pass
    takes its locks in the same order), with their load counted after the lock (the module docstring says why)."""
    in_routes = select(AgentRoute.agent_id).where(AgentRoute.route.in_(routes))
    agents = list(session.scalars(
        select(Agent).where(Agent.id.in_(in_routes), Agent.active.is_(True), Agent.available.is_(True))
        .order_by(Agent.id).with_for_update(key_share=True).execution_options(populate_existing=True)
    ))  # fmt: skip
    if not agents:
        return []
    memberships: dict[int, set[str]] = {agent.id: set() for agent in agents}
    for agent_id, route in session.execute(
        select(AgentRoute.agent_id, AgentRoute.route).where(AgentRoute.agent_id.in_(list(memberships)))
    ):
        memberships[agent_id].add(route)
    loads = open_counts(session, list(memberships))
    return [_Candidate(agent, memberships[agent.id], loads[agent.id], cap_of(agent, settings)) for agent in agents]


def _waiting(session: Session, route: str, limit: int, ticket_ids: Collection[uuid.UUID] | None) -> list[Ticket]:
    """The route's waiting tickets, oldest first, locked; one that another transaction holds is skipped."""
    query = select(Ticket).where(Ticket.status == "routed", Ticket.route == route, Ticket.assigned_agent_id.is_(None))
    if ticket_ids is not None:
        query = query.where(Ticket.id.in_(list(ticket_ids)))
    return list(session.scalars(
        query.order_by(Ticket.created_at, Ticket.id).limit(limit)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True)
    ))  # fmt: skip


def _last_given(candidate: _Candidate) -> datetime:
    return candidate.agent.last_assigned_at or datetime.min.replace(tzinfo=utcnow().tzinfo)


def _choose(pool: list[_Candidate], mode: str) -> _Candidate:
    if mode == "round_robin":
        return min(pool, key=lambda c: (_last_given(c), c.agent.id))
    return min(pool, key=lambda c: (c.load, _last_given(c), c.agent.id))


def _reason(mode: str, load: int, route: str) -> str:
    how = "round robin" if mode == "round_robin" else "least loaded"
    return f"auto: {how} ({load} open) in {route}"


def assign_waiting(session: Session, settings: AssignmentSettings, *, routes: Iterable[str] | None = None,
                   ticket_ids: Collection[uuid.UUID] | None = None,
                   avoid: Mapping[uuid.UUID, int] | None = None) -> list[Assignment]:
    """Give waiting tickets (of `routes`, or only `ticket_ids`; default: every route) to agents with a free slot.

    `avoid`: per ticket, an agent who gets it only if nobody else can (the assignee who just left it untouched).
    A ticket nobody can take now keeps waiting; the next pass, a resolve or an agent coming back takes it.
    """
    if not settings.enabled:
        return []
    wanted = set(ROUTES if routes is None else routes)
    chosen_routes = [route for route in ROUTES if route in wanted]
    candidates = _lock_candidates(session, chosen_routes, settings) if chosen_routes else []
    done: list[Assignment] = []
    stamp = utcnow()
    for route in chosen_routes:
        members = [c for c in candidates if route in c.routes]
        slots = sum(max(0, c.free) for c in members)
        if not slots:
            continue
        for ticket in _waiting(session, route, min(slots, MAX_PER_PASS), ticket_ids):
            pool = [c for c in members if c.free > 0]
            if not pool:
                break
            avoided = (avoid or {}).get(ticket.id)
            pool = [c for c in pool if c.agent.id != avoided] or pool
            candidate = _choose(pool, settings.mode)
            # Strictly increasing within a pass, so round robin's order never rests on a tie.
            stamp = max(utcnow(), stamp + timedelta(microseconds=1))
            done.append(_give(session, ticket, candidate, _reason(settings.mode, candidate.load, route), stamp))
    return done


def _give(session: Session, ticket: Ticket, candidate: _Candidate, reason: str, at: datetime) -> Assignment:
    ticket.assigned_agent_id = candidate.agent.id
    # The event carries the same instant as assigned_at: "touched" counts the assignee's events strictly after it.
    ticket.assigned_at = at
    candidate.agent.last_assigned_at = at
    candidate.load += 1
    session.add(TicketEvent(ticket_id=ticket.id, kind=EVENT_KIND, detail=reason, agent_id=candidate.agent.id,
                            created_at=at))
    session.flush()
    webhooks.emit(session, webhooks.TICKET_ASSIGNED, ticket, {"agent_id": candidate.agent.id, "reason": reason})
    log.info("ticket %s assigned to agent %s (%s)", ticket.id, candidate.agent.id, reason,
             extra={"ticket_id": str(ticket.id)})
    return Assignment(ticket.id, candidate.agent.id, reason)


# --- returning untouched tickets --------------------------------------------------------------------------------

def _by_assignee_since(model: type[TicketEvent] | type[Message]) -> list[ColumnElement[bool]]:
    """Rows of `model` (an event or a message) the ticket's assignee wrote after they got it: their touches."""
    return [model.ticket_id == Ticket.id, model.agent_id == Ticket.assigned_agent_id,
            model.created_at > Ticket.assigned_at]


def return_untouched(session: Session, settings: AssignmentSettings, now: datetime | None = None) -> list[Assignment]:
    """Take back every open ticket its assignee got automatically more than ASSIGNMENT_UNTOUCHED_MINUTES ago and has
    not acted on since; then give each to someone else of its route if anyone can take it (else it waits).

    A ticket an agent took by hand has no assigned_at and is never taken back. Tickets locked by an agent acting
    on them right now are skipped (that action is a touch)."""
    if not settings.enabled:
        return []
    cutoff = (now or utcnow()) - timedelta(minutes=settings.untouched_minutes)
    untouched = list(session.scalars(
        select(Ticket).where(
            Ticket.status != "resolved", Ticket.assigned_agent_id.is_not(None), Ticket.assigned_at < cutoff,
            ~select(TicketEvent.id).where(*_by_assignee_since(TicketEvent)).exists(),
            ~select(Message.id).where(*_by_assignee_since(Message)).exists(),
        ).order_by(Ticket.assigned_at, Ticket.id).limit(MAX_PER_PASS)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True)
    ))  # fmt: skip
    if not untouched:
        return []
    names = {agent.id: agent.name or agent.email for agent in session.scalars(
        select(Agent).where(Agent.id.in_({t.assigned_agent_id for t in untouched if t.assigned_agent_id})))}
    returned: list[Assignment] = []
    previous: dict[uuid.UUID, int] = {}
    at = utcnow()
    for ticket in untouched:
        assert ticket.assigned_agent_id is not None  # the query's condition
        previous[ticket.id] = ticket.assigned_agent_id
        reason = (f"returned to the pool: untouched for {settings.untouched_minutes} min by "
                  f"{names.get(ticket.assigned_agent_id, 'a former agent')}")
        ticket.assigned_agent_id, ticket.assigned_at = None, None
        session.add(TicketEvent(ticket_id=ticket.id, kind=EVENT_KIND, detail=reason, agent_id=None, created_at=at))
        returned.append(Assignment(ticket.id, None, reason))
    session.flush()
    for ticket in untouched:
        webhooks.emit(session, webhooks.TICKET_ASSIGNED, ticket, {"agent_id": None, "reason": "returned to the pool"})
    routes = {ticket.route for ticket in untouched if ticket.route is not None}
    return returned + assign_waiting(session, settings, routes=routes, ticket_ids=list(previous), avoid=previous)


@dataclass(frozen=True)
class SweepOutcome:
    returned: list[Assignment]
    assigned: list[Assignment]


def sweep(session: Session, settings: AssignmentSettings, now: datetime | None = None) -> SweepOutcome:
    """The periodic pass: return untouched tickets to the pool (and re-assign them), then assign what waits."""
    if not settings.enabled:
        return SweepOutcome([], [])
    moved = return_untouched(session, settings, now)
    returned = [a for a in moved if a.agent_id is None]
    assigned = [a for a in moved if a.agent_id is not None] + assign_waiting(session, settings)
    return SweepOutcome(returned, assigned)


# --- hooks ------------------------------------------------------------------------------------------------------

def _in_savepoint(session: Session, what: str, work: Callable[[], list[Assignment]]) -> list[Assignment]:
    """Run an assignment inside a SAVEPOINT of the caller's transaction: if it fails (a lock timeout, a lost
    connection mid-way), what the caller did (the routing, the resolve) still commits and the periodic pass assigns
    the tickets later."""
    try:
        with session.begin_nested():
            return work()
    except SQLAlchemyError:
        log.exception("assignment after %s failed; the periodic pass will assign", what)
        return []


def after_routing(session: Session, ticket_ids: Iterable[object]) -> list[Assignment]:
    """Assign the tickets a routing write just made `routed`, in the same transaction (worker.routing): a ticket is
    never seen routed but unassigned while an agent could be given it, and the routing commits either way.

    `ticket_ids`: UUIDs, or their text (a routing plan's rows carry them untyped)."""
    settings = installed(session)
    ids = [value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)) for value in ticket_ids]
    if settings is None or not settings.enabled or not ids:
        return []
    return _in_savepoint(session, "routing", lambda: assign_waiting(session, settings, ticket_ids=ids))


def after_resolve(session: Session, ticket: Ticket) -> list[Assignment]:
    """A resolve frees a slot of the ticket's assignee: give waiting tickets of their routes (and the ticket's)
    to whoever may take them now, the freed agent first in line when everyone else is at their cap."""
    settings = installed(session)
    if settings is None or not settings.enabled:
        return []
    routes = set(routes_of(session, ticket.assigned_agent_id)) if ticket.assigned_agent_id is not None else set()
    if ticket.route is not None:
        routes.add(ticket.route)
    return _in_savepoint(session, "a resolve", lambda: assign_waiting(session, settings, routes=routes))
