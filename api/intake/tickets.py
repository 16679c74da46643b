"""The JSON API of tickets: create (idempotent), read one, list (the agents' queue)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import abort, url_for
from flask.views import MethodView

from api.access import agents_only
from api.openapi import ProblemBlueprint
from api.schemas import (
    IdempotencyHeaderSchema,
    TicketCreatedSchema,
    TicketInSchema,
    TicketListQuerySchema,
    TicketPageSchema,
    TicketSchema,
    encode_cursor,
)
from api.services import current_services, get_session
from core.orm import Ticket
from core.tickets import get_ticket, list_tickets, submit_ticket

blp = ProblemBlueprint("tickets", __name__, url_prefix="/api/v1/tickets", description="Support tickets")


@blp.route("")
class TicketCollection(MethodView):
    @blp.arguments(TicketInSchema, description="The customer's question")
    @blp.arguments(IdempotencyHeaderSchema, location="headers", error_status_code=400)
    @blp.response(
        202,
        TicketCreatedSchema,
        description="Stored and queued for routing",
        headers={
            "Location": {"description": "The ticket's URL", "schema": {"type": "string"}},
        },
    )
    @blp.alt_response(200, schema=TicketCreatedSchema, description="Repeated Idempotency-Key: the ticket it created")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    def post(self, fields: dict[str, Any], headers: dict[str, Any]) -> tuple[Ticket, int, dict[str, str]]:
        """Submit a ticket; it is routed asynchronously, poll its URL for the route."""
        shared = current_services()
        ticket, created = submit_ticket(
            shared.session_factory,
            shared.celery,
            channel="api",
            idempotency_key=headers.get("idempotency_key"),
            **fields,
        )
        return ticket, 202 if created else 200, {"Location": url_for("tickets.TicketItem", ticket_id=ticket.id)}

    @agents_only
    @blp.arguments(TicketListQuerySchema, location="query", error_status_code=400)
    @blp.response(200, TicketPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List tickets oldest first, optionally one route and/or status; follow `next_cursor` for more."""
        page, last = list_tickets(
            get_session(),
            route=query.get("route"),
            status=query.get("status"),
            after=query.get("cursor"),
            limit=query["limit"],
        )
        return {"items": page, "next_cursor": encode_cursor(last) if last else None}


@blp.route("/<uuid:ticket_id>")
class TicketItem(MethodView):
    @blp.response(200, TicketSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, ticket_id: uuid.UUID) -> Ticket:
        """One ticket with its route, confidence and scores once the worker has classified it."""
        return get_ticket(get_session(), ticket_id) or abort(404, "No ticket with this id.")
