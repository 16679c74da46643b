"""The agents' dashboard (/agent/dashboard, any signed-in agent) and its JSON twin (GET /api/v1/stats, bearer
token): tickets in and resolved per day, median first response, SLA breaches and the override rate per route, the
numbers of core.stats.

The chart is an SVG drawn here on the server, inline in the page: no script, no chart library, nothing fetched
from anywhere when the page loads (the agents' pages' Content-Security-Policy allows no inline style, so its
colours come from agent.css classes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from flask import Blueprint, Flask, render_template
from flask.views import MethodView
from flask_smorest import Api
from marshmallow import fields

from api.access import agents_only
from api.agents import add_nav_link, web
from api.agents.auth import login_required
from api.openapi import ProblemBlueprint
from api.services import current_runtime, get_session
from core import stats as numbers
from core.orm import REVIEW_REASONS, utcnow
from core.routes import ROUTES

bp = Blueprint("agent_dashboard", __name__, url_prefix="/agent")
bp.after_request(web.protect_agent_page)

blp = ProblemBlueprint("agent-stats", __name__, url_prefix="/api/v1",
                       description="The agents' dashboard numbers (bearer token)")


# --- the chart ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bar:
    kind: str  # "received" or "resolved": the CSS class
    x: float
    y: float
    width: float
    height: float
    day: str
    value: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int  # the plot's left edge (the y labels are to its left)
    bottom: float  # the plot's baseline
    right: int
    bars: list[Bar]
    grid: list[tuple[float, int]]  # (y, value) of each horizontal line
    labels: list[tuple[float, str]]  # (x of the day's centre, "12/03")


WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 12, 28  # margins


def _nice_top(largest: int) -> int:
    """The y axis' top: the largest value rounded up to 1, 2 or 5 × a power of ten (at least 4, so an empty or
    quiet fortnight still has a readable scale)."""
    largest = max(largest, 4)
    power = 10 ** math.floor(math.log10(largest))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= largest)


def chart(days: list[numbers.Day]) -> Chart:
    """Two bars a day (in, resolved), the y axis from 0 to a round number, a line at each quarter."""
    top = _nice_top(max((max(d.received, d.resolved) for d in days), default=0))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(days), 1)
    bar = slot * 0.36
    bottom = TOP + plot_height
    bars: list[Bar] = []
    labels: list[tuple[float, str]] = []
    for n, day in enumerate(days):
        start = LEFT + n * slot + (slot - 2 * bar) / 2
        label = f"{day.day.month}/{day.day.day}"
        for offset, kind, value in ((0.0, "received", day.received), (bar, "resolved", day.resolved)):
            height = plot_height * value / top
            bars.append(Bar(kind, round(start + offset, 1), round(bottom - height, 1), round(bar, 1),
                            round(height, 1), day.day.isoformat(), value))
        labels.append((round(LEFT + n * slot + slot / 2, 1), label))
    grid = [(round(bottom - plot_height * q / 4, 1), top * q // 4) for q in range(5)]
    return Chart(WIDTH, HEIGHT, LEFT, bottom, WIDTH - RIGHT, bars, grid, labels)


# --- the page -----------------------------------------------------------------------------------------------------

def _stats() -> numbers.Stats:
    settings = current_runtime().settings
    return numbers.dashboard(get_session(), settings.sla, settings.display_timezone, utcnow())


@bp.get("/dashboard")
@login_required
def index() -> str:
    stats = _stats()
    return render_template("agent/dashboard.html", stats=stats, chart=chart(stats.days), routes=ROUTES,
                           window_days=numbers.WINDOW_DAYS)


# --- GET /api/v1/stats ----------------------------------------------------------------------------------------------

class DaySchema(ma.Schema):
    day = fields.Date(metadata={"description": "A day in the display time zone (DISPLAY_TIMEZONE)"})
    received = fields.Integer(metadata={"description": "Tickets created that day"})
    resolved = fields.Integer(metadata={"description": "Tickets resolved that day (and not reopened since)"})


class BreachCountSchema(ma.Schema):
    open = fields.Integer(metadata={"description": "Among the tickets open now, whatever their age"})
    closed = fields.Integer(metadata={"description": "Among the tickets resolved within the window"})


class BreachesSchema(ma.Schema):
    first_response = fields.Nested(BreachCountSchema)
    resolution = fields.Nested(BreachCountSchema)


class RouteStatsSchema(ma.Schema):
    route = fields.String(metadata={"enum": [*ROUTES, numbers.ALL], "description": "A route, or `all` (totals)"})
    first_response_target_minutes = fields.Integer(allow_none=True, metadata={
        "description": "SLA_FIRST_RESPONSE_MINUTES for the route; null in the totals"})
    resolution_target_minutes = fields.Integer(allow_none=True, metadata={
        "description": "SLA_RESOLUTION_MINUTES for the route; null in the totals"})
    received = fields.Integer(metadata={"description": "Tickets created within the window (route as it is now)"})
    resolved = fields.Integer(metadata={"description": "Tickets resolved within the window"})
    open = fields.Integer(metadata={"description": "Tickets open now"})
    first_response_median_minutes = fields.Float(allow_none=True, metadata={
        "description": "Median minutes from creation to the first agent reply, over tickets first answered within "
                       "the window; null when none was"})
    first_responses = fields.Integer(metadata={"description": "How many first responses the median is over"})
    breaches = fields.Nested(BreachesSchema)
    held_for_review = fields.Dict(keys=fields.String(metadata={"enum": list(REVIEW_REASONS)}), values=fields.Integer(),
                                  metadata={"description": "Of `received`, the tickets the model held in Needs "
                                                           "review, by reason (every reason, zeros included)"})
    routed_by_model = fields.Integer(metadata={
        "description": "Tickets the model routed to this route (its highest score) within the window"})
    corrected = fields.Integer(metadata={"description": "Of those, how many agents re-routed elsewhere"})
    override_rate = fields.Float(allow_none=True, metadata={
        "description": "corrected / routed_by_model; null when the model routed none"})


class StatsSchema(ma.Schema):
    since = fields.DateTime(format="iso", metadata={"description": "The window's start: local midnight, "
                                                                   "window_days - 1 days before today"})
    now = fields.DateTime(format="iso")
    timezone = fields.String(metadata={"description": "DISPLAY_TIMEZONE: where the days begin"})
    window_days = fields.Integer()
    truncated = fields.Boolean(metadata={"description": "true: too many tickets to count them all; the oldest "
                                                        "closed ones were left out"})
    days = fields.List(fields.Nested(DaySchema))
    routes = fields.List(fields.Nested(RouteStatsSchema))
    total = fields.Nested(RouteStatsSchema)


def _route(entry: numbers.RouteStats) -> dict[str, Any]:
    return {
        "route": entry.route, "first_response_target_minutes": entry.first_response_target_minutes,
        "resolution_target_minutes": entry.resolution_target_minutes, "received": entry.received,
        "resolved": entry.resolved, "open": entry.open,
        "first_response_median_minutes": entry.first_response_median_minutes,
        "first_responses": entry.first_responses,
        "breaches": {
            "first_response": {"open": entry.first_response_breached_open,
                               "closed": entry.first_response_breached_closed},
            "resolution": {"open": entry.resolution_breached_open, "closed": entry.resolution_breached_closed},
        },
        "held_for_review": dict(entry.held_for_review),
        "routed_by_model": entry.override.routed, "corrected": entry.override.corrected,
        "override_rate": entry.override_rate,
    }  # fmt: skip


def as_json(stats: numbers.Stats) -> dict[str, Any]:
    return {
        "since": stats.since, "now": stats.now, "timezone": stats.timezone, "window_days": len(stats.days),
        "truncated": stats.truncated, "days": stats.days, "routes": [_route(entry) for entry in stats.routes],
        "total": _route(stats.total),
    }  # fmt: skip


@blp.route("/stats")
class StatsView(MethodView):
    @agents_only
    @blp.response(200, StatsSchema, description="The dashboard's numbers")
    def get(self) -> dict[str, Any]:
        """The agents' dashboard as JSON: tickets in and resolved per day over the last 14 days (in the display
        time zone), and per route the median first response, SLA breaches (open and closed) and the model's
        override rate."""
        return as_json(_stats())  # in agents_only's unit of work


def init_app(app: Flask, api: Api) -> None:
    app.register_blueprint(bp)
    api.register_blueprint(blp)
    add_nav_link(app, "Dashboard", "agent_dashboard.index")
