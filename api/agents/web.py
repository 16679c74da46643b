"""The agents' pages: sign in/out, the queues (refreshing themselves), a ticket with its history and actions.

Ticket text is the customers' and untrusted: templates print it through Jinja's autoescape only (never |safe),
and every page sends a Content-Security-Policy without inline scripts or styles, so even a missed escape could
not run a script.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from urllib.parse import quote

import structlog
from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from flask_login import current_user, login_user, logout_user
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from api.agents import conversation, queue_paging
from api.agents.auth import AgentUser, cookie_will_be_dropped, current_agent, login_required, safe_next
from api.agents.categories import known, suggested
from api.agents.language import category_label, route_label
from api.services import get_session, unit_of_work
from core import agents as actions
from core import attachments as files
from core import rules
from core.orm import Agent, Ticket, utcnow
from core.routes import ROUTES
from core.search import customer_tickets

bp = Blueprint("agents", __name__, url_prefix="/agent")
log = logging.getLogger(__name__)

REFRESH_SECONDS = 5
QUEUE_PAGE = 100
MAX_MESSAGE_CHARS = 20_000


@bp.after_request
def protect_agent_page(response: Response) -> Response:
    """Agent pages hold customers' personal data: never cached. (Not framed, no inline code: api.security sends
    those headers on every page.)

    Every agents' blueprint (the queues here, the Agents and Models pages) registers this same hook."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(HTTPException)
def _error_page(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    return render_template("agent/error.html", status=status, title=status_phrase(status), detail=None), status


def status_phrase(status: int) -> str:
    """An error page's title: the HTTP phrase, in the page's language for the ones an agent meets."""
    phrases = {400: gettext("Bad Request"), 403: gettext("Forbidden"), 404: gettext("Not Found"),
               405: gettext("Method Not Allowed"), 413: gettext("Content Too Large"),
               500: gettext("Internal Server Error"), 503: gettext("Service Unavailable")}
    return phrases.get(status) or HTTPStatus(status).phrase


# --- template helpers -----------------------------------------------------------------------------------------

def ticket_title(ticket: Ticket, limit: int = 120) -> str:
    """The subject, else the body's first non-empty line: what an agent scans the queue for."""
    text = (ticket.subject or "").strip() or next((line.strip() for line in ticket.body.splitlines() if line.strip()),
                                                    "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "—"
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 60:
        return gettext("%(s)s s", s=seconds)
    if seconds < 3600:
        return gettext("%(min)s min", min=seconds // 60)
    if seconds < 86400:
        return gettext("%(h)s h %(min)s min", h=seconds // 3600, min=f"{seconds % 3600 // 60:02d}")
    return gettext("%(d)s d %(h)s h", d=seconds // 86400, h=seconds % 86400 // 3600)


def route_score(ticket: Ticket) -> float | None:
    """The model's score for the route the ticket has now (low when a person overrode the model)."""
    scores = ticket.scores
    if scores is None or ticket.route is None:
        return None
    return scores.get(ticket.route)


@bp.app_template_filter("utc")
def _utc(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when is not None else "—"


@bp.context_processor
def _helpers() -> dict[str, Callable[..., object]]:
    return {"ticket_title": ticket_title, "age": age, "route_score": route_score, "model_route": actions.model_route}


# --- sign in / out ----------------------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    target = safe_next(request.values.get("next")) or url_for("agents.queue")
    if current_user.is_authenticated:
        return redirect(target)
    error = None
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "").strip()
        password = request.form.get("password", "")
        with unit_of_work() as db:
            agent = actions.authenticate(db, email, password) if email and password else None
            user = AgentUser.of(agent) if agent is not None else None
        if user is not None:
            session.clear()  # nothing from before sign-in carries over, the CSRF token included
            login_user(user)
            session.permanent = True
            log.info("agent %s signed in", user.agent_id)
            return redirect(target, code=303)
        log.warning("failed sign-in from %s", request.remote_addr)
        error = gettext("Wrong e-mail address or password.")
    page = render_template("agent/login.html", error=error, email=email, next=safe_next(request.values.get("next")),
                           insecure=cookie_will_be_dropped())
    return (page, 401) if error else page


@bp.post("/logout")
def logout() -> Response:
    """Sign out everywhere: the agent's session epoch moves on, so this cookie, any copy of it and the agent's
    other browsers are all refused from the next request (clearing the cookie alone would leave copies valid)."""
    if current_user.is_authenticated:
        agent_id = current_agent().agent_id
        with unit_of_work() as db:
            agent = db.get(Agent, agent_id)
            if agent is not None:
                actions.end_sessions(agent)
        log.info("agent %s signed out", agent_id)
    logout_user()
    session.clear()
    flash(gettext("You are signed out."), "info")
    return redirect(url_for("agents.login"), code=303)


# --- the queues -------------------------------------------------------------------------------------------------

def _queue_key() -> str:
    queue = request.args.get("queue", "all")
    return queue if queue in actions.QUEUE_KEYS else "all"


def _queue_context(queue: str) -> dict[str, object]:
    db = get_session()
    agent_id = current_agent().agent_id
    counts = actions.queue_counts(db, agent_id)
    return {
        "queue": queue,
        "queues": actions.QUEUES,
        "counts": counts,
        **queue_paging.page(db, queue, agent_id, QUEUE_PAGE),
        "names": actions.agent_names(db),
        "now": utcnow(),
        "limit": QUEUE_PAGE,
    }


@bp.get("/", strict_slashes=False)
@login_required
def queue() -> str:
    return render_template("agent/queue.html", refresh_seconds=REFRESH_SECONDS, **_queue_context(_queue_key()))


@bp.get("/queue")
@login_required
def queue_fragment() -> str:
    """The queue's tabs and rows alone, for the page's own refresh (static/agent.js)."""
    return render_template("agent/_queue.html", **_queue_context(_queue_key()))


# --- one ticket -------------------------------------------------------------------------------------------------

def _load(ticket_id: uuid.UUID) -> Ticket:
    ticket = get_session().get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    return ticket


@bp.get("/tickets/<uuid:ticket_id>")
@login_required
def ticket_page(ticket_id: uuid.UUID) -> str:
    ticket = _load(ticket_id)
    db = get_session()
    names = actions.agent_names(db)
    return render_template(
        "agent/ticket.html",
        ticket=ticket,
        routes=ROUTES,
        categories=known(db),
        model_category=actions.model_category(db, ticket),
        suggestions=suggested(db, ticket),
        history=actions.history(db, ticket),
        customer_tickets=customer_tickets(db, ticket),
        conversation=conversation.timeline(ticket.id),
        names=names,
        owner=names.get(ticket.assigned_agent_id) if ticket.assigned_agent_id is not None else None,
        rule_name=rules.name_at(db, ticket.rule_id, ticket.rule_version) if ticket.rule_id is not None else None,
        me=current_agent(),
        now=utcnow(),
        queue=_queue_key(),
    )


def _act(ticket_id: uuid.UUID, action: Callable[..., tuple[Ticket, bool]], *args: object,
         **options: object) -> bool:
    try:
        with unit_of_work() as db:
            _ticket, changed = action(db, ticket_id, *args, **options)
    except actions.TicketNotFound:
        abort(404)
    except actions.AgentError:
        abort(400)
    with structlog.contextvars.bound_contextvars(ticket_id=str(ticket_id)):
        log.info("agent %s: %s %s", current_agent().agent_id, action.__name__, "done" if changed else "unchanged")
    return changed


def _back(ticket_id: uuid.UUID) -> Response:
    return redirect(url_for("agents.ticket_page", ticket_id=ticket_id, queue=_queue_key()), code=303)


@bp.post("/tickets/<uuid:ticket_id>/route")
@login_required
def reroute(ticket_id: uuid.UUID) -> Response:
    """The route buttons, with the category select beside them: the select shows the ticket's category, so only a
    different choice is a category correction (an untouched select confirms nothing)."""
    route = request.form.get("route", "")
    if route not in ROUTES:
        abort(400)
    category = request.form.get("category", "").strip() or None
    if category is not None and category == _load(ticket_id).fine_category:
        category = None
    categories = known(get_session())
    if category is not None:
        try:
            actions.check_category(category, route, categories)
        except actions.AgentError as error:  # e.g. a category of another route: say so on the page
            flash(gettext("Not changed: %(reason)s.", reason=error), "error")
            return _back(ticket_id)
    changed = _act(ticket_id, actions.reroute, route, current_agent().agent_id, category, known=categories)
    if changed and category is not None:
        flash(gettext("Routed to %(route)s, category %(category)s. The correction is kept for the next model.",
                      route=route_label(route), category=category_label(category)), "success")
    elif changed:
        flash(gettext("Routed to %(route)s. The correction is kept for the next model.", route=route_label(route)),
              "success")
    else:
        flash(gettext("Already routed to %(route)s.", route=route_label(route)), "info")
    return _back(ticket_id)


@bp.post("/tickets/<uuid:ticket_id>/resolve")
@login_required
def resolve(ticket_id: uuid.UUID) -> Response:
    if not _act(ticket_id, actions.resolve, current_agent().agent_id):
        flash(gettext("Already resolved."), "info")
        return _back(ticket_id)
    return _next_in_queue(gettext("Resolved."))


def _next_in_queue(done: str) -> Response:
    """On to the queue's oldest open ticket (the next one to answer, as the queue lists them), else the queue: an
    agent working through a queue should not have to go back to it after every ticket."""
    queue = _queue_key()
    following = actions.queue_tickets(get_session(), queue, current_agent().agent_id, limit=1)
    if not following:
        flash(gettext("%(done)s Nothing else is waiting in this queue.", done=done), "success")
        return redirect(url_for("agents.queue", queue=queue), code=303)
    flash(gettext("%(done)s Next: %(reference)s, the oldest in this queue.", done=done,
                  reference=following[0].reference), "success")
    return redirect(url_for("agents.ticket_page", ticket_id=following[0].id, queue=queue), code=303)


@bp.post("/tickets/<uuid:ticket_id>/assign")
@login_required
def assign(ticket_id: uuid.UUID) -> Response:
    if _act(ticket_id, actions.assign, current_agent().agent_id):
        flash(gettext("Assigned to you."), "success")
    return _back(ticket_id)


@bp.post("/tickets/<uuid:ticket_id>/messages")
@login_required
def add_message(ticket_id: uuid.UUID) -> Response:
    """The reply box: `Send reply` e-mails the text to the customer (through the outbox), `Add note` keeps it for
    agents only."""
    body = request.form.get("body", "")
    kind = request.form.get("action", "")
    if kind not in ("reply", "note"):
        abort(400)
    if not body.strip() or len(body) > MAX_MESSAGE_CHARS or "\x00" in body:  # PostgreSQL stores no NUL
        if kind == "reply":
            empty = gettext("Write the reply first (at most %(n)s characters).", n=f"{MAX_MESSAGE_CHARS:,}")
        else:
            empty = gettext("Write the note first (at most %(n)s characters).", n=f"{MAX_MESSAGE_CHARS:,}")
        flash(empty, "error")
        return _back(ticket_id)
    message = conversation.ReplyIn(ticket_id, current_agent().agent_id, body)
    if kind == "note":
        conversation.add_note(message)
        flash(gettext("Note added. Only agents see it."), "success")
        return _back(ticket_id)
    if not _load(ticket_id).customer_email:
        flash(gettext("This ticket has no customer e-mail address: add a note instead."), "error")
        return _back(ticket_id)
    conversation.send_reply(message)
    flash(gettext("Reply queued: it is e-mailed to the customer (see its state below)."), "success")
    return _back(ticket_id)


# --- attachments --------------------------------------------------------------------------------------------------

@bp.app_template_global()
def ticket_files(ticket_id: uuid.UUID) -> list[files.AttachmentInfo]:
    """The ticket page's list of attachments (its first mail's and its replies'), without their bytes."""
    return files.ticket_attachments(get_session(), ticket_id)


@bp.get("/tickets/<uuid:ticket_id>/attachments/<int:attachment_id>")
@login_required
def attachment(ticket_id: uuid.UUID, attachment_id: int) -> Response:
    """A customer's file, always as a download: the name as RFC 6266 `filename*` (UTF-8, any script), nosniff,
    and never a type a browser would render as a page under our origin (HTML, SVG: served as octet-stream)."""
    stored = files.ticket_attachment(get_session(), ticket_id, attachment_id)
    if stored is None:
        abort(404)
    response = Response(stored.data, content_type=files.served_type(stored.content_type))  # no charset added
    ascii_name = stored.filename.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("?", "_")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(stored.filename, safe='')}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
