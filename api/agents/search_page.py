"""The agents' search page: /agent/search?q=… finds tickets by reference, address or words (core.search), newest
first over every queue and status, a page at a time ("Older →" carries the keyset cursor). Every agents' page has
the search box in its top bar (templates/agent/base.html)."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from flask import Blueprint, render_template, request
from flask_babel import gettext
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from api.agents import web
from api.agents.auth import login_required
from api.schemas import CursorField, encode_cursor
from api.services import get_session
from core import agents as actions
from core.orm import utcnow
from core.search import QUERY_MAX, TERMS_MAX, Search, SearchError, search_tickets
from core.tickets import Position

bp = Blueprint("agent_search", __name__, url_prefix="/agent")
bp.after_request(web.protect_agent_page)
PAGE = 50
_CURSOR = CursorField()


@bp.context_processor
def _helpers() -> dict[str, Callable[..., object]]:
    return {"ticket_title": web.ticket_title, "age": web.age}


def _before() -> Position | None:
    raw = request.args.get("before")
    if not raw:
        return None
    try:
        return cast(Position, _CURSOR.deserialize(raw))
    except ValidationError:
        return None  # a cursor this app made long ago, or a hand-edited one: the first page


def _search_error(bad: SearchError) -> str:
    """core.search says why in English (the JSON API's detail); the page says it in the agent's language."""
    known = {
        "the search is empty": gettext("The search is empty."),
        f"the search is longer than {QUERY_MAX} characters": gettext(
            "The search is longer than %(n)s characters.", n=QUERY_MAX),
        f"a search has at most {TERMS_MAX} words": gettext("A search has at most %(n)s words.", n=TERMS_MAX),
    }
    return known.get(str(bad), str(bad))


@bp.get("/search")
@login_required
def search() -> str | tuple[str, int] | Response:
    raw = request.args.get("q", "")
    context: dict[str, object] = {"q": raw, "tickets": [], "older": None, "error": None, "now": utcnow()}
    if raw.strip():
        try:
            query = Search.parse(raw)
        except SearchError as bad:
            context["error"] = _search_error(bad)
            return render_template("agent/search.html", **context), 400
        db = get_session()
        tickets, last = search_tickets(db, query, before=_before(), limit=PAGE)
        context.update(tickets=tickets, older=encode_cursor(last) if last else None, names=actions.agent_names(db))
    return render_template("agent/search.html", **context)
