"""An agent's own availability for automatic assignment (bearer token): GET / POST /api/v1/agents/me/availability.

Away: no new tickets come (the open ones stay theirs). Back: tickets that waited for someone of their routes go out
in the same request. The rules are core.assignment's; init_app also hands this process' ASSIGNMENT settings to its
sessions, so a resolve on the agents' pages or API assigns the next waiting ticket (core.agents.resolve).
"""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from flask import Flask
from flask.views import MethodView
from flask_smorest import Api
from marshmallow import fields

from api.access import agents_only, current_api_agent_id
from api.openapi import ProblemBlueprint
from api.services import EXTENSION, current_runtime, unit_of_work
from core import assignment
from core.orm import Agent
from core.routes import ROUTES

log = logging.getLogger(__name__)

blp = ProblemBlueprint("agent-availability", __name__, url_prefix="/api/v1/agents",
                       description="An agent's own availability for automatic assignment (bearer token)")


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
        settings = current_runtime().settings.assignment
        with unit_of_work() as session:
            agent = session.get(Agent, current_api_agent_id())
            assert agent is not None
            changed = assignment.set_available(agent, fields["available"])
            done = []
            if changed and agent.available:
                done = assignment.assign_waiting(session, settings, routes=assignment.routes_of(session, agent.id))
        if changed:
            log.info("agent %s: %s, %d waiting ticket(s) assigned", current_api_agent_id(),
                     "available" if fields["available"] else "away", len(done))
        return _standing(len(done))


def init_app(app: Flask, api: Api) -> None:
    api.register_blueprint(blp)
    assignment.install(app.extensions[EXTENSION])  # the resolve hook (core.agents) reads these settings
