"""The customers' web form (server-rendered, Japanese first) and the page that shows a ticket being routed."""

from __future__ import annotations

import logging
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
import structlog
from flask import Blueprint, abort, current_app, g, redirect, render_template, request, send_from_directory, url_for
from flask_babel import gettext as _
from flask_babel import pgettext
from werkzeug.wrappers import Response

from api.i18n import pick_language
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


FAVICON_MAX_AGE = 24 * 60 * 60


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page links (bookmarks, the tab of a JSON response, an error page):
    the same SVG as the templates' <link rel="icon">, instead of a 404 in every access log."""
    static = current_app.static_folder
    if static is None:  # never with create_app (api/static), but Flask types it optional
        abort(404)
    return send_from_directory(static, "favicon.svg", mimetype="image/svg+xml", max_age=FAVICON_MAX_AGE)


@bp.get("/")
def form() -> str:
    lang = pick_language()
    return render_template("form.html", lang=lang, values={}, errors=[])


@bp.post("/")
def submit() -> Response | tuple[str, int]:
    """The one place a form submission is handled; its CSRF token was checked before (api.agents.auth)."""
    lang = pick_language()
    values = {name: request.form.get(name, "") for name in _FORM_FIELDS}
    if g.get("form_undecodable"):
        errors = [_unacceptable()]
        return render_template("form.html", lang=lang, values=values, errors=errors), 400
    try:
        fields = _form_schema.load(values)
    except ma.ValidationError as error:
        messages = _error_messages(error.normalized_messages())
        return render_template("form.html", lang=lang, values=values, errors=messages), 400
    ticket, _created = submit_ticket(current_runtime(), NewTicket(channel="web", **fields))
    with structlog.contextvars.bound_contextvars(ticket_id=str(ticket.id)):
        log.info("ticket accepted through the web form")
    return redirect(url_for("web.ticket_page", ticket_id=ticket.id, lang=lang), code=303)


def _unacceptable() -> str:
    return _("Your message contains characters we cannot accept.")


def _field_error(field: str) -> str:
    if field == "body":
        limit = f"{current_runtime().settings.max_body_chars:,}"
        return _("Please write your question (at most %(limit)s characters).", limit=limit)
    if field == "subject":
        return _("The subject may have at most 500 characters.")
    if field == "customer_email":
        return _("This is not a valid e-mail address.")
    return _unacceptable()


def _error_messages(messages: Mapping[str, Any]) -> list[str]:
    """One localised sentence per field in error (marshmallow's own messages are English and technical)."""
    return [_unacceptable() if _UNSTORABLE & set(messages[field]) else _field_error(field)
            for field in _FORM_FIELDS if field in messages]


@bp.get("/tickets/<uuid:ticket_id>")
def ticket_page(ticket_id: uuid.UUID) -> str:
    """What the customer needs to follow the ticket: reference, status, team, what happens next.

    Anyone holding the link sees this page, so it shows neither the text nor the e-mail address, and no model
    scores (the route may be an agent's since). The page's script polls the public JSON view for changes."""
    with unit_of_work() as session:
        ticket = get_ticket(session, ticket_id)
        if ticket is None:
            abort(404)
        return render_template(
            "ticket.html",
            lang=pick_language(),
            ticket=ticket,
            labels=status_and_route_labels(),
            next_steps=next_steps(has_email=bool(ticket.customer_email)),
            api_url=url_for("tickets.TicketItem", ticket_id=ticket.id),
        )


def _status_labels() -> dict[str, str]:
    """The customer's words for each status (context "customer": the agents' pages name them otherwise)."""
    return {
        "received": pgettext("customer", "Received"),
        "queued": pgettext("customer", "Waiting to be routed"),
        "routed": pgettext("customer", "Routed"),
        "needs_review": pgettext("customer", "A person is checking it"),
        "failed": pgettext("customer", "Could not be routed automatically (a person will handle it)"),
        "resolved": pgettext("customer", "Resolved"),
    }


def _route_labels() -> dict[str, str]:
    return {"Account": _("Account team"), "Payment": _("Payment team"), "Other": _("General support")}


def status_and_route_labels() -> dict[str, str]:
    """Every status and every route in words; built from the model's lists, so a new status cannot show blank
    (one without words here raises KeyError in every test of this page)."""
    statuses, routes = _status_labels(), _route_labels()
    return {**{status: statuses[status] for status in STATUSES}, **{route: routes[route] for route in ROUTES}}


def next_steps(*, has_email: bool) -> dict[str, str]:
    """What happens next, per status: the page's script swaps it when the status changes."""
    if has_email:
        reply = _("The team will reply to the e-mail address you gave.")
    else:
        reply = _("The team will handle your question. You left no e-mail address, so please quote your reference "
                  "when you contact us.")

    def step(status: str) -> str:
        if status in PENDING_STATUSES:
            return _("We are passing your question to the right team. This page updates by itself.")
        if status == "resolved":
            return _("Your question has been answered. If you still need help, ask again quoting your reference.")
        return reply

    return {status: step(status) for status in STATUSES}
