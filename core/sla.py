"""Service-level clocks: when a ticket is due its first answer and its resolution, and where it stands now.

Two clocks per ticket, both started at created_at (the customer's first message) and measured against its route's
targets (core.config.SlaSettings, SLA_FIRST_RESPONSE_MINUTES / SLA_RESOLUTION_MINUTES):
- first response: stopped by the first agent reply queued to the customer (tickets.first_response_at, recorded
  here when the outbox stores it), or by the ticket's resolution when nobody replied (a ticket closed without an
  answer keeps nobody waiting any longer). An internal note or our automatic acknowledgement is no response.
- resolution: stopped by resolved_at. A reopened ticket loses its resolved_at (core.conversations.reopen), so its
  clock runs on from created_at: the customer's problem was not solved after all.

Round the clock (24/7): no business hours or holidays. Tickets arrive by e-mail and the web at any hour, and an
hours calendar would be a second setting to get wrong; a helpdesk that only works office hours sets targets that
span a night (docs/agents.md, "SLA").

A clock is `ok`, `due_soon` (less than DUE_SOON_SHARE of its target left), `breached` (past due: still running, or
stopped late) or `met` (stopped in time). A ticket without a route yet (waiting for the model, failed) is held to
the shortest target of any route: it could be any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from core.config import SlaSettings
from core.orm import Ticket

OK, DUE_SOON, BREACHED, MET = "ok", "due_soon", "breached", "met"
STATES = (OK, DUE_SOON, BREACHED, MET)
DUE_SOON_SHARE = 0.25
FIRST_RESPONSE, RESOLUTION = "first_response", "resolution"


@dataclass(frozen=True)
class Clock:
    """One target on one ticket: due at `due`; `stopped_at` is None while it runs. `left` is what remains until
    due, counted to now while it runs and to when it stopped after that: negative when overdue (or stopped late)."""

    kind: str  # FIRST_RESPONSE or RESOLUTION
    target: timedelta
    due: datetime
    stopped_at: datetime | None
    state: str
    left: timedelta

    @property
    def running(self) -> bool:
        return self.stopped_at is None


@dataclass(frozen=True)
class TicketClocks:
    first_response: Clock
    resolution: Clock

    @property
    def current(self) -> Clock:
        """The clock an agent works against now: the first response while it runs, then the resolution."""
        return self.first_response if self.first_response.running else self.resolution

    @property
    def breached(self) -> bool:
        return BREACHED in (self.first_response.state, self.resolution.state)


def targets(sla: SlaSettings, route: str | None) -> tuple[timedelta, timedelta]:
    """(first response, resolution) targets of a route; the shortest of any route for a ticket without one."""
    if route in sla.first_response_minutes and route in sla.resolution_minutes:
        first, resolved = sla.first_response_minutes[route], sla.resolution_minutes[route]
    else:
        first, resolved = min(sla.first_response_minutes.values()), min(sla.resolution_minutes.values())
    return timedelta(minutes=first), timedelta(minutes=resolved)


def clock(kind: str, started: datetime, target: timedelta, stopped_at: datetime | None, now: datetime) -> Clock:
    due = started + target
    if stopped_at is not None:
        left = due - stopped_at
        return Clock(kind, target, due, stopped_at, MET if left >= timedelta(0) else BREACHED, left)
    left = due - now
    if left < timedelta(0):
        state = BREACHED
    elif left < target * DUE_SOON_SHARE:
        state = DUE_SOON
    else:
        state = OK
    return Clock(kind, target, due, None, state, left)


def clocks_of(sla: SlaSettings, route: str | None, created_at: datetime, first_response_at: datetime | None,
              resolved_at: datetime | None, now: datetime) -> TicketClocks:
    """Both clocks from a ticket's columns (the dashboard passes bare rows, not Ticket objects)."""
    first_target, resolution_target = targets(sla, route)
    answered = min((at for at in (first_response_at, resolved_at) if at is not None), default=None)
    return TicketClocks(
        clock(FIRST_RESPONSE, created_at, first_target, answered, now),
        clock(RESOLUTION, created_at, resolution_target, resolved_at, now),
    )


def ticket_clocks(sla: SlaSettings, ticket: Ticket, now: datetime) -> TicketClocks:
    return clocks_of(sla, ticket.route, ticket.created_at, ticket.first_response_at, ticket.resolved_at, now)


def record_first_response(session: Session, ticket: Ticket, at: datetime) -> bool:
    """Note that an agent first answered the customer at `at` (an agent reply was queued to them); a later reply
    changes nothing. The UPDATE is conditional, so two agents replying at once record the first one only (on
    PostgreSQL the second waits for the first's row lock, then finds the column set)."""
    statement = (
        update(Ticket).where(Ticket.id == ticket.id, Ticket.first_response_at.is_(None))
        .values(first_response_at=at)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    changed = cast(CursorResult[Any], session.execute(statement)).rowcount
    if changed:
        set_committed_value(ticket, "first_response_at", at)  # as stored; the object need not be in this session
    elif ticket in session:
        session.expire(ticket, ["first_response_at"])  # another reply's time: read it when asked
    return bool(changed)


def first_response_minutes(created_at: datetime, first_response_at: datetime) -> float:
    return max(0.0, (first_response_at - created_at).total_seconds() / 60)

