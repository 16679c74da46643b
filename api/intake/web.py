"""The customers' web form (server-rendered, Japanese first) and the page that shows a ticket being routed."""

from __future__ import annotations

import logging
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
import structlog
from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from api.i18n import pick_language, texts
from api.parsing import read_body
from api.schemas import Text, TicketFieldsSchema
from api.services import current_runtime, unit_of_work
from core.orm import PENDING_STATUSES, STATUSES
from core.routes import ROUTES
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


@bp.url_value_preprocessor
def _read_form_body(endpoint: str | None, _values: dict[str, object] | None) -> None:
    """Read a form post's body before anything parses it (URL preprocessors run before the CSRF check): a body
    past the size limit is a 413 rather than a form cut short, and bytes that are not UTF-8 are noted for submit()
    to refuse; werkzeug would otherwise keep them as literal `%FF` text or drop the whole form."""
    if endpoint != "web.submit" or request.method != "POST":
        return
    raw = read_body(request)  # cached: the form is parsed from these bytes afterwards
    g.form_undecodable = request.mimetype == "application/x-www-form-urlencoded" and not _is_utf8_form(raw)


def _is_utf8_form(raw: bytes) -> bool:
    try:
        urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return False
    return True


@bp.get("/")
def form() -> str:
    lang = pick_language()
    return render_template("form.html", lang=lang, t=texts(lang), values={}, errors=[])


@bp.post("/")
def submit() -> Response | tuple[str, int]:
    """The one place a form submission is handled; its CSRF token was checked before (api.agents.auth)."""
    lang = pick_language()
    values = {name: request.form.get(name, "") for name in _FORM_FIELDS}
    if g.get("form_undecodable"):
        errors = [texts(lang)["error_other"]]
        return render_template("form.html", lang=lang, t=texts(lang), values=values, errors=errors), 400
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
    """What the customer needs to follow the ticket: reference, status, team, what happens next.

    Anyone holding the link sees this page, so it shows neither the text nor the e-mail address, and no model
    scores (the route may be an agent's since). The page's script polls the public JSON view for changes."""
    with unit_of_work() as session:
        ticket = get_ticket(session, ticket_id)
        if ticket is None:
            abort(404)
        lang = pick_language()
        t = texts(lang)
        return render_template(
            "ticket.html",
            lang=lang,
            t=t,
            ticket=ticket,
            labels=status_and_route_labels(t),
            next_steps=next_steps(t, has_email=bool(ticket.customer_email)),
            api_url=url_for("tickets.TicketItem", ticket_id=ticket.id),
        )


def status_and_route_labels(t: Mapping[str, str]) -> dict[str, str]:
    """Every status and every route in words; built from the model's lists, so a new status cannot show blank."""
    return {
        **{status: t[f"status_{status}"] for status in STATUSES},
        **{route: t[f"route_{route}"] for route in ROUTES},
    }


def next_steps(t: Mapping[str, str], *, has_email: bool) -> dict[str, str]:
    """What happens next, per status: the page's script swaps it when the status changes."""
    reply = t["next_reply_email" if has_email else "next_reply_no_email"]

    def step(status: str) -> str:
        if status in PENDING_STATUSES:
            return t["next_pending"]
        return t["next_resolved"] if status == "resolved" else reply

    return {status: step(status) for status in STATUSES}
