"""An agent's own availability for automatic assignment: GET / POST /api/v1/agents/me/availability (bearer token),
the top bar's Available / Away switch on every agents' page (POST /agent/availability), and, for admins, every
agent's standing (GET /api/v1/agents).

Away: no new tickets come (the open ones stay theirs). Back: tickets that waited for someone of their routes go out
in the same request; the API and the switch share change_availability for that. The rules are core.assignment's;
init_app also hands this process' ASSIGNMENT settings to its sessions, so a resolve on the agents' pages or API
assigns the next waiting ticket (core.agents.resolve).
"""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from flask import Blueprint, Flask, flash, redirect, request, url_for
from flask.views import MethodView
from flask_babel import gettext, ngettext
from flask_login import current_user
from flask_smorest import Api
from marshmallow import fields
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from api.access import admins_only, agents_only, current_api_agent_id
from api.agents.auth import current_agent, login_required, safe_next
from api.openapi import ProblemBlueprint
from api.services import EXTENSION, current_runtime, get_session, unit_of_work
from core import assignment
from core.agents import list_agents
from core.orm import Agent
from core.routes import ROUTES

log = logging.getLogger(__name__)

blp = ProblemBlueprint("agent-availability", __name__, url_prefix="/api/v1/agents",
                       description="An agent's own availability for automatic assignment (bearer token)")
bp = Blueprint("availability", __name__, url_prefix="/agent/availability")  # the top bar's switch


class JsonBoolean(fields.Boolean):
    """JSON true or false only: "yes", 1 or "away" are refused (422), not guessed (marshmallow's Boolean takes
    them, and 1 == True even for a truthy set)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class AvailabilityInSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    available = JsonBoolean(required=True, metadata={
        "description": "true: new tickets of your routes may come; false: away, none come (yours stay yours)"})


class AvailabilitySchema(ma.Schema):
    agent_id = fields.Integer()
    email = fields.String()
    available = fields.Boolean()
    routes = fields.List(fields.String(metadata={"enum": list(ROUTES)}), metadata={
        "description": "The routes you are assigned tickets of (`furiwake agent routes EMAIL ROUTE...`)"})
    max_open = fields.Integer(metadata={"description": "Your cap of open tickets: your own, else ASSIGNMENT_MAX_OPEN"})
    open_tickets = fields.Integer(metadata={"description": "Unresolved tickets assigned to you"})
    assigned_now = fields.Integer(metadata={
        "description": "Waiting tickets of your routes this request gave out (to you or a colleague)"})


class TeamMemberSchema(AvailabilitySchema):
    name = fields.String(allow_none=True)
    role = fields.String(metadata={"enum": ["admin", "agent"]})
    active = fields.Boolean(metadata={"description": "false: deactivated, gets no tickets and cannot sign in"})

    class Meta:
        exclude = ("assigned_now",)


def change_availability(session: Session, agent: Agent, available: bool) -> tuple[bool, int]:
    """Set the agent available or away; back, the tickets waiting for their routes go out at once. (changed, how
    many waiting tickets were assigned), for the API and the top bar's switch alike."""
    changed = assignment.set_available(agent, available)
    done = []
    if changed and agent.available:
        done = assignment.assign_waiting(session, current_runtime().settings.assignment,
                                         routes=assignment.routes_of(session, agent.id))
    if changed:
        log.info("agent %s: %s, %d waiting ticket(s) assigned", agent.id, "available" if available else "away",
                 len(done))
    return changed, len(done)


def _standing(assigned_now: int = 0) -> dict[str, Any]:
    with unit_of_work() as session:
        agent = session.get(Agent, current_api_agent_id())
        assert agent is not None  # agents_only found this active agent in the same transaction
        return {
            "agent_id": agent.id, "email": agent.email, "available": agent.available,
            "routes": assignment.routes_of(session, agent.id),
            "max_open": assignment.cap_of(agent, current_runtime().settings.assignment),
            "open_tickets": assignment.open_counts(session, [agent.id])[agent.id], "assigned_now": assigned_now,
        }  # fmt: skip


@blp.route("/me/availability")
class MyAvailability(MethodView):
    @agents_only
    @blp.response(200, AvailabilitySchema, description="Your availability, routes, cap and open tickets")
    def get(self) -> dict[str, Any]:
        """Whether you are available for new tickets, with your routes, cap and open tickets."""
        return _standing()

    @agents_only
    @blp.arguments(AvailabilityInSchema, description="Available or away")
    @blp.response(200, AvailabilitySchema, description="Your availability as stored")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    def post(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Mark yourself available or away; setting what is already set changes nothing."""
        with unit_of_work() as session:
            agent = session.get(Agent, current_api_agent_id())
            assert agent is not None
            _changed, assigned = change_availability(session, agent, fields["available"])
        return _standing(assigned)


@blp.route("")
class Team(MethodView):
    @admins_only
    @blp.response(200, TeamMemberSchema(many=True), description="Every agent, by e-mail")
    def get(self) -> list[dict[str, Any]]:
        """Every agent's role, availability, routes, cap and open tickets (admins only)."""
        session = get_session()
        agents = list_agents(session)
        settings = current_runtime().settings.assignment
        counts = assignment.open_counts(session, [a.id for a in agents])
        return [{
            "agent_id": a.id, "email": a.email, "name": a.name, "role": a.role, "active": a.active,
            "available": a.available, "routes": list(a.routes),
            "max_open": a.max_open if a.max_open is not None else settings.max_open, "open_tickets": counts[a.id],
        } for a in agents]  # fmt: skip


@bp.post("")
@login_required
def switch() -> Response:
    """The top bar's switch: `available` is "true" (available) or "false" (away); back to the page it was on."""
    wanted = request.form.get("available", "")
    back = safe_next(request.form.get("next")) or url_for("agents.queue")
    if wanted not in ("true", "false"):
        flash(gettext("Choose Available or Away."), "error")
        return redirect(back, code=303)
    session = get_session()
    agent = session.get(Agent, current_agent().agent_id)
    assert agent is not None  # login_required loaded this active agent in the same transaction
    _changed, assigned = change_availability(session, agent, wanted == "true")
    if wanted == "false":
        flash(gettext("You are away: no new tickets come to you; your open ones stay yours."), "info")
    else:
        flash(ngettext("You are available: %(num)d waiting ticket was assigned.",
                       "You are available: %(num)d waiting tickets were assigned.", assigned)
              if assigned else gettext("You are available: new tickets of your routes may come to you."), "success")
    return redirect(back, code=303)


def _switch_state() -> dict[str, Any]:
    """`agent_available` for the top bar's switch: read from the database on each page, so every browser of the
    agent shows what the API or another tab last set."""
    if not request.path.startswith("/agent") or not getattr(current_user, "is_authenticated", False):
        return {}
    agent = get_session().get(Agent, current_agent().agent_id)
    return {"agent_available": agent is None or agent.available}


def init_app(app: Flask, api: Api) -> None:
    api.register_blueprint(blp)
    app.register_blueprint(bp)
    app.context_processor(_switch_state)
    assignment.install(app.extensions[EXTENSION])  # the resolve hook (core.agents) reads these settings
