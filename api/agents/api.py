"""The agents' JSON actions on tickets (bearer token): re-route (and re-categorise), resolve, reply, note, and the
suggested replies. The listing stays in api.intake.tickets."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import marshmallow as ma
import structlog
from flask.views import MethodView
from marshmallow import fields, validate

from api.access import agents_only, current_api_agent_id
from api.agents.categories import known, suggested
from api.agents.conversation import NoteIn, ReplyIn, add_note, send_reply
from api.openapi import ProblemBlueprint
from api.problems import raise_problem
from api.schemas import Text, TicketSchema, _not_blank
from api.services import get_session, unit_of_work
from core import agents as actions
from core.orm import Ticket
from core.routes import ROUTES

log = logging.getLogger(__name__)

blp = ProblemBlueprint(
    "agent-tickets", __name__, url_prefix="/api/v1/tickets", description="Agents' actions on tickets (bearer token)"
)


class RouteInSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    route = fields.String(required=True, validate=validate.OneOf(ROUTES), metadata={"enum": list(ROUTES)})
    category = Text(allow_none=True, validate=validate.Length(min=1, max=64), metadata={
        "description": "Optional: the fine category (e.g. `Payment - Refund`), one the served model knows and of "
                       "this route; 422 otherwise"})


class AgentTicketSchema(TicketSchema):
    assigned_agent_id = fields.Integer(allow_none=True)
    resolved_at = fields.DateTime(format="iso", allow_none=True)


def _apply(action: Callable[..., tuple[Ticket, bool]], ticket_id: uuid.UUID, *args: object,
           **options: object) -> Ticket:
    try:
        with unit_of_work() as session:
            ticket, changed = action(session, ticket_id, *args, **options)
    except actions.TicketNotFound:
        raise_problem(404, "No ticket with this id.")
    except actions.AgentError as error:
        raise_problem(422, str(error), title="Invalid category")
    with structlog.contextvars.bound_contextvars(ticket_id=str(ticket_id)):
        log.info("agent %s: %s %s", current_api_agent_id(), action.__name__, "done" if changed else "unchanged")
    return ticket


@blp.route("/<uuid:ticket_id>/route")
class TicketRoute(MethodView):
    @agents_only
    @blp.arguments(RouteInSchema, description="The route the ticket belongs to")
    @blp.response(200, AgentTicketSchema, description="The ticket with its new route")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    def post(self, fields: dict[str, Any], ticket_id: uuid.UUID) -> Ticket:
        """Re-route a ticket (or confirm the route of one waiting for review), optionally with its fine category;
        the correction is stored as the next model's training signal. A new category with the route the ticket
        already has is a correction too. Setting what a routed ticket already has changes nothing."""
        category = fields.get("category")
        options = {"known": known(get_session())} if category is not None else {}
        return _apply(actions.reroute, ticket_id, fields["route"], current_api_agent_id(), category, **options)


@blp.route("/<uuid:ticket_id>/resolve")
class TicketResolve(MethodView):
    @agents_only
    @blp.response(200, AgentTicketSchema, description="The resolved ticket")
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, ticket_id: uuid.UUID) -> Ticket:
        """Resolve a ticket; resolving it again changes nothing."""
        return _apply(actions.resolve, ticket_id, current_api_agent_id())


class MessageInSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    body = Text(required=True, validate=[_not_blank, validate.Length(max=20_000)],
                         metadata={"description": "Plain text; sent as written (replies) or kept for agents (notes)"})


class MessageSchema(ma.Schema):
    id = fields.Integer()
    ticket_id = fields.UUID()
    kind = fields.String(metadata={"enum": ["agent_reply", "note"]})
    delivery = fields.String(allow_none=True, metadata={
        "enum": ["pending", "sent", "failed", "bounced", None],
        "description": "Replies: `pending` until the mail server accepted it (retried for a day), then `sent`; "
                       "notes: null"})
    recipient = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    body = fields.String()
    message_id = fields.String(allow_none=True, metadata={"description": "The RFC 5322 Message-ID the mail carries"})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime(format="iso")
    sent_at = fields.DateTime(format="iso", allow_none=True)


@blp.route("/<uuid:ticket_id>/replies")
class TicketReplies(MethodView):
    @agents_only
    @blp.arguments(MessageInSchema, description="The reply, e-mailed to the customer")
    @blp.response(202, MessageSchema, description="Stored and queued: the mail is sent by the mail worker")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="The ticket has no customer e-mail address")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    def post(self, fields: dict[str, Any], ticket_id: uuid.UUID) -> object:
        """Reply to the customer by e-mail (subject `Re: … [T-…]`, threaded on their mail). The reply is stored
        `pending` and sent by the mail worker, with retries for a day if the mail server is down; it is never sent
        twice. 409 when the ticket has no customer e-mail address (an internal note is still possible)."""
        return send_reply(ReplyIn(ticket_id, current_api_agent_id(), fields["body"]))


@blp.route("/<uuid:ticket_id>/notes")
class TicketNotes(MethodView):
    @agents_only
    @blp.arguments(MessageInSchema, description="The note, for agents only")
    @blp.response(201, MessageSchema, description="The stored note")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    def post(self, fields: dict[str, Any], ticket_id: uuid.UUID) -> object:
        """Add an internal note to the ticket: shown to agents in the conversation, never sent to the customer."""
        return add_note(NoteIn(ticket_id, current_api_agent_id(), fields["body"]))


class SuggestionSchema(ma.Schema):
    text = fields.String(required=True, metadata={"description": "The answer, to edit and send as a reply"})
    similarity = fields.Float(required=True, metadata={
        "description": "0 to 1: how alike this ticket and the one the answer was given to are (character n-gram "
                       "TF-IDF cosine)"})
    category = fields.String(required=True, metadata={"description": "The fine category of the answered ticket"})
    source = fields.String(required=True, metadata={"enum": ["corpus", "agent_reply"]})
    reference = fields.String(required=True, metadata={
        "description": "The corpus row's id, or the reference of the ticket the agent's reply answered"})
    language = fields.String(required=True, metadata={"enum": ["ja", "en"]})


@blp.route("/<uuid:ticket_id>/suggestions")
class TicketSuggestions(MethodView):
    @agents_only
    @blp.response(200, SuggestionSchema(many=True), description="Up to three answers, best first")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, ticket_id: uuid.UUID) -> list[object]:
        """Suggested replies: the answers given to the tickets most like this one in its fine category (or, without
        one, in its route), from the corpus and from replies agents sent; in the ticket's language first."""
        session = get_session()
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            raise_problem(404, "No ticket with this id.")
        return list(suggested(session, ticket))
