"""The agents' dashboard numbers (the /agent/dashboard page and GET /api/v1/stats show the same ones).

Over a window of the last WINDOW_DAYS days in the display time zone, today included (days start at local
midnight, so "Tuesday" is the helpdesk's Tuesday):
- tickets in per day (created_at) and resolved per day (resolved_at; a reopened ticket has none, so it counts
  again on the day it is resolved for good);
- per route (the ticket's route now) and in all: the median minutes to a first response, over tickets first
  answered within the window; breaches of either target (core.sla) among the tickets open now, whatever their age,
  and among the tickets resolved within the window;
- per route and in all: the tickets created within the window that the model held for review, by its reason
  (core.orm.REVIEW_REASONS; null for tickets routed before the reason was stored, which are not counted);
- per route the model chose (the highest of its scores): the override rate, corrections / tickets the model routed
  within the window, counted as core.registry.override_rates counts them per model version.

The clocks and medians are computed here in Python over the rows, the same on PostgreSQL and SQLite (no
dialect's date arithmetic or percentile function), so the rows read are bounded: at most MAX_ROWS, newest first;
`truncated` says when more would have counted (the open tickets are read first, then the newest).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from core import sla
from core.agents import OPEN_STATUSES
from core.config import SlaSettings
from core.orm import REVIEW_REASONS, Correction, Ticket
from core.registry import Override
from core.routes import ROUTES

WINDOW_DAYS = 14
MAX_ROWS = 50_000
ALL = "all"  # the totals' key beside the routes


@dataclass(frozen=True)
class Day:
    day: date  # in the display time zone
    received: int
    resolved: int


@dataclass
class RouteStats:
    """One route's numbers (or every ticket's, route ALL). Breaches: `open` among the tickets open now, `closed`
    among the tickets resolved within the window."""

    route: str
    first_response_target_minutes: int | None = None  # None for ALL: the routes' targets differ
    resolution_target_minutes: int | None = None
    received: int = 0
    resolved: int = 0
    open: int = 0
    first_response_median_minutes: float | None = None
    first_responses: int = 0  # how many first responses the median is over
    first_response_breached_open: int = 0
    first_response_breached_closed: int = 0
    resolution_breached_open: int = 0
    resolution_breached_closed: int = 0
    override: Override = field(default_factory=lambda: Override(0, 0))
    # Of `received`, the tickets the model held for review, by reason (every REVIEW_REASONS key, zeros included).
    held_for_review: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REVIEW_REASONS, 0))

    @property
    def override_rate(self) -> float | None:
        return self.override.rate


@dataclass(frozen=True)
class Stats:
    since: datetime  # the window's start: local midnight WINDOW_DAYS - 1 days before today
    now: datetime
    timezone: str
    days: list[Day]
    routes: list[RouteStats]  # one per route, in ROUTES order
    total: RouteStats
    truncated: bool  # MAX_ROWS reached: the oldest tickets of the window were left out


def window_start(now: datetime, zone: ZoneInfo, days: int = WINDOW_DAYS) -> datetime:
    today = now.astimezone(zone).date()
    return datetime.combine(today - timedelta(days=days - 1), time(), tzinfo=zone)


def dashboard(session: Session, targets: SlaSettings, timezone: str, now: datetime,
              days: int = WINDOW_DAYS) -> Stats:
    zone = ZoneInfo(timezone)
    since = window_start(now, zone, days)
    rows = session.execute(
        select(Ticket.route, Ticket.status, Ticket.created_at, Ticket.first_response_at, Ticket.resolved_at,
               Ticket.review_reason)
        .where(or_(Ticket.status.in_(OPEN_STATUSES), Ticket.created_at >= since, Ticket.resolved_at >= since,
                   Ticket.first_response_at >= since))
        .order_by(case((Ticket.status.in_(OPEN_STATUSES), 0), else_=1), Ticket.created_at.desc())
        .limit(MAX_ROWS + 1)
    ).all()  # fmt: skip
    truncated = len(rows) > MAX_ROWS
    by_route = {route: RouteStats(route, targets.first_response_minutes[route], targets.resolution_minutes[route])
                for route in ROUTES}
    total = RouteStats(ALL)
    received: Counter[date] = Counter()
    resolved: Counter[date] = Counter()
    waits: dict[str, list[float]] = {route: [] for route in (*ROUTES, ALL)}
    for route, status, created_at, first_response_at, resolved_at, review_reason in rows[:MAX_ROWS]:
        buckets = [total] + ([by_route[route]] if route in by_route else [])
        clocks = sla.clocks_of(targets, route, created_at, first_response_at, resolved_at, now)
        is_open = status in OPEN_STATUSES
        closed_here = status == "resolved" and resolved_at is not None and resolved_at >= since
        if created_at >= since:
            received[created_at.astimezone(zone).date()] += 1
        if closed_here and resolved_at is not None:
            resolved[resolved_at.astimezone(zone).date()] += 1
        if first_response_at is not None and first_response_at >= since:
            waits[ALL].append(sla.first_response_minutes(created_at, first_response_at))
            if route in by_route:
                waits[route].append(sla.first_response_minutes(created_at, first_response_at))
        first_late = int(clocks.first_response.state == sla.BREACHED)
        resolution_late = int(clocks.resolution.state == sla.BREACHED)
        for stats in buckets:
            stats.received += int(created_at >= since)
            if created_at >= since and review_reason in stats.held_for_review:
                stats.held_for_review[review_reason] += 1
            stats.resolved += int(closed_here)
            stats.open += int(is_open)
            if is_open:
                stats.first_response_breached_open += first_late
                stats.resolution_breached_open += resolution_late
            elif closed_here:
                stats.first_response_breached_closed += first_late
                stats.resolution_breached_closed += resolution_late
    for stats in (*by_route.values(), total):
        found = waits[stats.route]
        stats.first_responses = len(found)
        stats.first_response_median_minutes = round(statistics.median(found), 1) if found else None
    overrides = override_by_route(session, since)
    for route, override in overrides.items():
        by_route[route].override = override
    total.override = Override(sum(o.routed for o in overrides.values()), sum(o.corrected for o in overrides.values()))
    return Stats(since, now, timezone, _days(since, days, received, resolved), list(by_route.values()), total,
                 truncated)


def _days(since: datetime, days: int, received: Counter[date], resolved: Counter[date]) -> list[Day]:
    first = since.date()
    return [Day(day, received[day], resolved[day]) for day in (first + timedelta(days=n) for n in range(days))]


def _model_route() -> ColumnElement[str]:
    """The route the model chose, in SQL: the highest score, ties to the earlier route (as core.agents.model_route
    picks it in Python: max over Account, Payment, Other)."""
    account, payment, other = (func.coalesce(column, 0.0) for column in
                               (Ticket.score_account, Ticket.score_payment, Ticket.score_other))
    return case(
        (and_(account >= payment, account >= other), ROUTES[0]),
        (payment >= other, ROUTES[1]),
        else_=ROUTES[2],
    )


def override_by_route(session: Session, since: datetime) -> dict[str, Override]:
    """Per route the model chose: tickets it routed since `since` and how many of them agents re-routed away from
    it. A correction counts as core.registry.override_rates counts it: the agent's route differs from the model's
    (a ticket left for review and confirmed as predicted is no override); one ticket counts once."""
    corrected = (
        select(Correction.ticket_id)
        .where(Correction.predicted_route.is_not(None), Correction.corrected_route != Correction.predicted_route)
        .distinct()
        .subquery()
    )
    chose = _model_route().label("model_route")
    rows = session.execute(
        select(chose, func.count(Ticket.id), func.count(corrected.c.ticket_id))
        .outerjoin(corrected, corrected.c.ticket_id == Ticket.id)
        .where(Ticket.model_version.is_not(None), Ticket.score_account.is_not(None), Ticket.routed_at >= since)
        .group_by(chose)
    ).all()
    found = {str(route): Override(int(routed), int(fixed)) for route, routed, fixed in rows}
    return {route: found.get(route, Override(0, 0)) for route in ROUTES}
