"""The JSON API of tickets: create (idempotent), read one, list (the agents' queue).

Reading one ticket is open to anyone holding its id (the customer's page polls it), so without an agent's bearer
token it answers the public view only (PublicTicketSchema: status, team, reference); with one, the whole ticket.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any, NoReturn

import structlog
from flask import abort, jsonify, request, url_for
from flask.views import MethodView
from werkzeug.wrappers import Response

from api.access import BEARER_SCHEME, agents_only, authenticate_bearer
from api.openapi import ProblemBlueprint
from api.problems import IDEMPOTENCY_KEY_REUSED, raise_problem
from api.schemas import (
    IdempotencyHeaderSchema,
    PublicTicketSchema,
    TicketBatchCreatedSchema,
    TicketBatchInSchema,
    TicketCreatedSchema,
    TicketInSchema,
    TicketListQuerySchema,
    TicketPageSchema,
    TicketSchema,
    encode_cursor,
)
from api.services import current_runtime, unit_of_work
from core.orm import Ticket
from core.search import Search, SearchError, search_tickets
from core.tickets import (
    IdempotencyKeyReused,
    NewTicket,
    get_ticket,
    list_tickets,
    submit_ticket,
    submit_tickets,
)

log = logging.getLogger(__name__)

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
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, fields: dict[str, Any], headers: dict[str, Any]) -> tuple[Ticket, int, dict[str, str]]:
        """Submit a ticket; it is routed asynchronously, poll its URL for the route."""
        new = NewTicket(channel="api", idempotency_key=headers.get("idempotency_key"), **fields)
        try:
            ticket, created = submit_ticket(current_runtime(), new)
        except IdempotencyKeyReused as reused:
            _key_reused(reused.key, "its ticket")
        with structlog.contextvars.bound_contextvars(ticket_id=str(ticket.id)):
            log.info("ticket %s through the API", "accepted" if created else "repeated (same Idempotency-Key)")
        return ticket, 202 if created else 200, {"Location": url_for("tickets.TicketItem", ticket_id=ticket.id)}

    @agents_only
    @blp.arguments(TicketListQuerySchema, location="query", error_status_code=400)
    @blp.response(200, TicketPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List tickets oldest first, optionally one route and/or status; follow `next_cursor` for more. With `q`,
        search instead: newest first, over every status unless one is given."""
        if query.get("q") is not None:
            return _search(query)
        with unit_of_work() as session:
            page, last = list_tickets(
                session,
                route=query.get("route"),
                status=query.get("status"),
                after=query.get("cursor"),
                limit=query["limit"],
            )
        return {"items": page, "next_cursor": encode_cursor(last) if last else None}


@blp.route("/batch")
class TicketBatch(MethodView):
    @blp.arguments(TicketBatchInSchema, description="Several customers' questions")
    @blp.arguments(IdempotencyHeaderSchema, location="headers", error_status_code=400)
    @blp.response(202, TicketBatchCreatedSchema, description="All stored and queued for routing, in one transaction")
    @blp.alt_response(200, schema=TicketBatchCreatedSchema,
                      description="Repeated Idempotency-Key: every ticket was created by an earlier request")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, fields: dict[str, Any], headers: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Submit up to 100 tickets at once (a bulk import, a service forwarding its customers' questions): all are
        stored or none is, each as `POST /api/v1/tickets` stores one, and each counts against the intake rate
        limit. With an Idempotency-Key the whole request can be repeated safely."""
        key = headers.get("idempotency_key")
        news = [NewTicket(channel="api", idempotency_key=_ticket_key(key, index), **ticket)
                for index, ticket in enumerate(fields["tickets"])]
        try:
            results = submit_tickets(current_runtime(), news)
        except IdempotencyKeyReused:
            _key_reused(key, "its tickets")
        for ticket, created in results:
            with structlog.contextvars.bound_contextvars(ticket_id=str(ticket.id)):
                log.info("ticket %s through the API in a batch", "accepted" if created else "repeated")
        created_any = any(created for _, created in results)
        return {"items": [ticket for ticket, _ in results]}, 202 if created_any else 200


def _key_reused(key: str | None, what: str) -> NoReturn:
    raise_problem(
        422,
        f"Idempotency-Key {key!r} was already used for a different request; nothing was stored."
        f" Send a new key for a new request, or the same request again to get {what}.",
        type=IDEMPOTENCY_KEY_REUSED,
        title="Idempotency-Key reused",
        errors={"Idempotency-Key": ["already used for a different request"]},
    )


def _ticket_key(key: str | None, index: int) -> str | None:
    """A batch's Idempotency-Key made one per ticket, so a repeated batch finds each of its tickets. Hashed: the
    key may be as long as the column (200 characters), and the index must fit beside it."""
    if key is None:
        return None
    return f"batch:{hashlib.sha256(key.encode()).hexdigest()[:40]}:{index}"


def _search(query: dict[str, Any]) -> dict[str, Any]:
    try:
        search = Search.parse(query["q"])
    except SearchError as bad:
        raise_problem(400, f"{bad}.", errors={"q": [str(bad)]})
    with unit_of_work() as session:
        page, last = search_tickets(session, search, route=query.get("route"), status=query.get("status"),
                                    before=query.get("cursor"), limit=query["limit"])
    return {"items": page, "next_cursor": encode_cursor(last) if last else None}


_public_ticket = PublicTicketSchema()
_full_ticket = TicketSchema()


@blp.route("/<uuid:ticket_id>")
class TicketItem(MethodView):
    @blp.doc(
        security=[{}, {BEARER_SCHEME: []}],
        responses={
            "200": {
                "description": "Without a token, the public view (status, team, reference); with an agent's "
                "bearer token, the whole ticket with its text, customer and model scores",
                "content": {"application/json": {"schema": {"oneOf": [PublicTicketSchema, TicketSchema]}}},
            }
        },
    )
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, ticket_id: uuid.UUID) -> Response:
        """One ticket: its status and route for anyone with the link; everything, for an agent's token.

        A request that sends credentials and fails them gets a 401 rather than the public view, so an agent's
        client with a revoked token learns it instead of silently reading less."""
        for_agent = "Authorization" in request.headers
        with unit_of_work() as session:
            if for_agent:
                authenticate_bearer()
            ticket = get_ticket(session, ticket_id) or abort(404, "No ticket with this id.")
            response = jsonify((_full_ticket if for_agent else _public_ticket).dump(ticket))
        response.vary.add("Authorization")
        if for_agent:
            response.cache_control.private = True
            response.cache_control.no_store = True
        return response
