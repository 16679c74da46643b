"""The customers' web form (server-rendered, Japanese first) and the page that shows a ticket being routed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
import structlog
from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from api.i18n import pick_language, texts
from api.schemas import Text, TicketFieldsSchema
from api.services import current_runtime, unit_of_work
from core.tickets import NewTicket, get_ticket, submit_ticket

log = logging.getLogger(__name__)
bp = Blueprint("web", __name__)


@bp.after_request
def _vary_on_language(response: Response) -> Response:
    """The language may come from Accept-Language, so caches must key on it."""
    response.vary.add("Accept-Language")
    return response


_FORM_FIELDS = ("subject", "customer_email", "body")


class TicketFormSchema(TicketFieldsSchema):
    """The form's fields; a browser sends empty strings for fields left empty, and extra fields (lang, the button)."""

    class Meta:
        unknown = ma.EXCLUDE
        fields = _FORM_FIELDS

    @ma.pre_load
    def _empty_means_absent(self, data: Mapping[str, str], **_kwargs: object) -> dict[str, str]:
        return {key: value for key, value in data.items() if key == "body" or value.strip()}


_form_schema = TicketFormSchema()
# Text's own refusals (NUL, lone surrogates) are not the field's usual mistake and get a message of their own.
_UNSTORABLE = set(Text.default_error_messages.values())


@bp.get("/")
def form() -> str:
    lang = pick_language()
    return render_template("form.html", lang=lang, t=texts(lang), values={}, errors=[])


@bp.post("/")
def submit() -> Response | tuple[str, int]:
    """The one place a form submission is handled (the CSRF check of a later issue goes here)."""
    lang = pick_language()
    values = {name: request.form.get(name, "") for name in _FORM_FIELDS}
    try:
        fields = _form_schema.load(values)
    except ma.ValidationError as error:
        messages = _error_messages(error.normalized_messages(), lang)
        return render_template("form.html", lang=lang, t=texts(lang), values=values, errors=messages), 400
    ticket, _created = submit_ticket(current_runtime(), NewTicket(channel="web", **fields))
    with structlog.contextvars.bound_contextvars(ticket_id=str(ticket.id)):
        log.info("ticket accepted through the web form")
    return redirect(url_for("web.ticket_page", ticket_id=ticket.id, lang=lang), code=303)


def _error_messages(messages: Mapping[str, Any], lang: str) -> list[str]:
    """One localised sentence per field in error (marshmallow's own messages are English and technical)."""
    t = texts(lang)
    limit = f"{current_runtime().settings.max_body_chars:,}"
    sentences = []
    for field in _FORM_FIELDS:
        if field in messages:
            key = "error_other" if _UNSTORABLE & set(messages[field]) else f"error_{field}"
            sentences.append(t.get(key, t["error_other"]).format(limit=limit))
    return sentences


@bp.get("/tickets/<uuid:ticket_id>")
def ticket_page(ticket_id: uuid.UUID) -> str:
    with unit_of_work() as session:
        ticket = get_ticket(session, ticket_id)
        if ticket is None:
            abort(404)
        lang = pick_language()
        return render_template(
            "ticket.html",
            lang=lang,
            t=texts(lang),
            ticket=ticket,
            api_url=url_for("tickets.TicketItem", ticket_id=ticket.id),
        )
