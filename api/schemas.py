"""Marshmallow schemas of the JSON API: they validate requests and, through flask-smorest, write the OpenAPI doc."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

import marshmallow as ma
from flask import url_for
from marshmallow import fields, validate

from api.services import current_runtime
from core.orm import REVIEW_REASONS, STATUSES, Ticket
from core.routes import ROUTES
from core.search import QUERY_MAX
from core.tickets import Position


class Text(fields.String):
    """A string every backend can store: PostgreSQL refuses NUL, and a JSON `\\ud800` escape yields a lone
    surrogate that no database driver can encode. Refusing both here keeps client input from ever becoming a 500."""

    default_error_messages = {
        "nul": "Must not contain NUL characters.",
        "surrogate": "Must not contain unpaired surrogate characters.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise self.make_error("nul")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("surrogate") from None
        return text


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ma.ValidationError("Must not be blank.")


def _within_body_limit(value: str) -> None:
    """The limit is a setting (MAX_BODY_CHARS), so it is read from the running app, not fixed at import."""
    limit = current_runtime().settings.max_body_chars
    if len(value) > limit:
        raise ma.ValidationError(f"Must be at most {limit} characters (got {len(value)}).")


class TicketFieldsSchema(ma.Schema):
    """What a customer may send, whatever the channel; lengths match the columns of the tickets table."""

    body = Text(required=True, validate=[_not_blank, _within_body_limit], metadata={"description": "The question"})
    subject = Text(allow_none=True, validate=validate.Length(max=500))
    customer_name = Text(allow_none=True, validate=validate.Length(max=200))
    customer_email = fields.Email(allow_none=True, validate=validate.Length(max=320))


class TicketInSchema(TicketFieldsSchema):
    class Meta:
        unknown = ma.RAISE


class IdempotencyHeaderSchema(ma.Schema):
    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Regexp(r"^[!-~]{1,200}$", error="Must be 1 to 200 visible ASCII characters."),
        metadata={"description": "Repeat a request safely: the same key returns the ticket the first request created."},
    )


class TicketCreatedSchema(ma.Schema):
    id = fields.UUID()
    reference = fields.String(metadata={"description": "Short reference to quote to a person, e.g. T-7KQ2M9XA"})
    status = fields.String(metadata={"description": "`queued`, or `received` while the broker is unreachable"})
    url = fields.Method("ticket_url")

    def ticket_url(self, ticket: Ticket) -> str:
        return url_for("tickets.TicketItem", ticket_id=ticket.id)


# Tickets one batch request may carry (Zendesk's create_many takes 100 too); the request also stays within
# MAX_REQUEST_BYTES.
MAX_BATCH_TICKETS = 100


class TicketBatchInSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    tickets = fields.List(
        fields.Nested(TicketInSchema), required=True, validate=validate.Length(min=1, max=MAX_BATCH_TICKETS),
        metadata={"description": f"1 to {MAX_BATCH_TICKETS} tickets, each as `POST /api/v1/tickets` takes one"},
    )


class TicketBatchCreatedSchema(ma.Schema):
    items = fields.List(fields.Nested(TicketCreatedSchema), metadata={
        "description": "The tickets in the order they were sent"})


class PublicTicketSchema(ma.Schema):
    """What anyone holding a ticket's link may read: the link travels in e-mails, browser histories and chat logs,
    so it carries only what the customer needs to follow the ticket, never the text, the address or model scores."""

    id = fields.UUID(required=True)
    reference = fields.String(required=True, metadata={"description": "Short reference to quote to a person"})
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    route = fields.String(
        required=True, allow_none=True, metadata={"enum": [*ROUTES, None], "description": "The team; null until routed"}
    )
    created_at = fields.DateTime(required=True, format="iso")


class TicketSchema(ma.Schema):
    """The whole ticket, for agents. Every field is always present (null when unknown), hence `required`: it also
    keeps this schema and PublicTicketSchema apart where a response may be either (oneOf)."""

    id = fields.UUID(required=True)
    reference = fields.String(required=True)
    channel = fields.String(required=True, metadata={"enum": ["web", "email", "api"]})
    subject = fields.String(required=True, allow_none=True)
    body = fields.String(required=True)
    customer_name = fields.String(required=True, allow_none=True)
    customer_email = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    route = fields.String(required=True, allow_none=True, metadata={"enum": [*ROUTES, None]})
    confidence = fields.Float(required=True, allow_none=True)
    scores = fields.Dict(required=True, keys=fields.String(), values=fields.Float(), allow_none=True)
    model_version = fields.String(required=True, allow_none=True)
    fine_category = fields.String(required=True, allow_none=True, metadata={
        "description": "The fine category, e.g. `Payment - Refund`: the model's second output, or the one an agent"
                       " set (then fine_confidence is null)"})
    fine_confidence = fields.Float(required=True, allow_none=True)
    rule_id = fields.Integer(required=True, allow_none=True, dump_only=True, metadata={
        "description": "The admin's rule that routed or assigned the ticket before the model (null: none matched)"})
    rule_version = fields.Integer(required=True, allow_none=True, dump_only=True, metadata={
        "description": "The version of that rule (its saved snapshot says what it was)"})
    model_route = fields.String(required=True, allow_none=True, dump_only=True, metadata={
        "enum": [*ROUTES, None], "description": "The model's own route, beside `route` when a rule set that"})
    review_reason = fields.String(required=True, allow_none=True, dump_only=True, metadata={
        "enum": [*REVIEW_REASONS, None],
        "description": "Why the model held the ticket in review: `no_text` (nothing left to classify), "
                       "`unfamiliar_text` (unlike the text it was trained on), `low_confidence` (below its route's "
                       "threshold); kept after an agent decides, null when the model or a rule routed it"})
    attempts = fields.Integer(required=True)
    last_error = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True, format="iso")
    queued_at = fields.DateTime(required=True, format="iso", allow_none=True)
    routed_at = fields.DateTime(required=True, format="iso", allow_none=True)


def encode_cursor(position: Position) -> str:
    raw = f"{position.created_at.isoformat()}|{position.id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


class CursorField(fields.String):
    """An opaque cursor: clients pass back `next_cursor` as it is; its content may change between versions."""

    default_error_messages = {"invalid_cursor": "Not a valid cursor; pass back a next_cursor unchanged."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Position:  # type: ignore[override]
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
            created_at, _, ticket_id = raw.partition("|")
            when = datetime.fromisoformat(created_at)
            if when.tzinfo is None:
                raise ValueError("naive timestamp")
            return Position(when, uuid.UUID(ticket_id))
        except (ValueError, binascii.Error):
            raise self.make_error("invalid_cursor") from None


class TicketListQuerySchema(ma.Schema):
    route = fields.String(validate=validate.OneOf(ROUTES))
    status = fields.String(validate=validate.OneOf(STATUSES))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = CursorField(metadata={"description": "`next_cursor` of the previous page"})
    q = fields.String(validate=validate.Length(min=1, max=QUERY_MAX), metadata={"description": (
        "Search: a reference (T-XXXXXXXX), an address (or part of one, with @), or words that must all appear in"
        " the subject, text, name or address, Japanese included; results are newest first, every status")})


class TicketPageSchema(ma.Schema):
    items = fields.List(fields.Nested(TicketSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})
