"""The Agents page (/agent/agents, admins only): every agent with their role, routes, availability, cap, open
tickets and API tokens; a form to add an agent; per agent, their routes, cap and role, Deactivate / Activate, and
a Revoke button per token.

Deactivating locks the agent out at once (core.agents.deactivate_agent: sessions ended, tokens revoked). Nobody
deactivates themself here, and core.agents refuses to demote or deactivate the last active admin, so the page
cannot lock the helpdesk out of its own management. After routes or a cap change, the tickets waiting for that
agent's routes are offered at once (core.assignment.assign_waiting), as when an agent comes back from away.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from api.agents import add_nav_link
from api.agents.auth import admin_required, admins_only_page, current_agent
from api.agents.web import protect_agent_page
from api.services import current_runtime, get_session, unit_of_work
from core import agents as actions
from core import assignment
from core.orm import ROLES, Agent
from core.routes import ROUTES

bp = Blueprint("accounts", __name__, url_prefix="/agent/agents")
bp.after_request(protect_agent_page)  # the same headers as every agents' page
bp.register_error_handler(403, admins_only_page)
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_link(app, "Agents", "accounts.index", admin_only=True)


def _page(status: int = 200, *, error: str | None = None, form: dict[str, Any] | None = None) -> tuple[str, int]:
    db = get_session()
    agents = actions.list_agents(db)
    return render_template(
        "agent/agents.html", agents=agents, me=current_agent(), routes=ROUTES, roles=ROLES,
        open_tickets=assignment.open_counts(db, [a.id for a in agents]), tokens=actions.live_tokens(db),
        default_cap=current_runtime().settings.assignment.max_open, error=error,
        form=form or {"role": "agent", "routes": []},
    ), status


@bp.get("")
@admin_required
def index() -> tuple[str, int]:
    return _page()


def _agent(agent_id: int) -> Agent:
    agent = get_session().get(Agent, agent_id)
    if agent is None:
        abort(404)
    return agent


def _cap(raw: str | None) -> int | None:
    """The cap field: empty for the default (ASSIGNMENT_MAX_OPEN), else a whole number from 1."""
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise assignment.AssignmentError(gettext("The cap must be a whole number from 1, or empty for the default."))
    return int(raw)


def _offer_waiting(db: Session, agent: Agent) -> int:
    """Waiting tickets of the agent's routes go out now (to them or a colleague), not at the next periodic pass."""
    settings = current_runtime().settings.assignment
    return len(assignment.assign_waiting(db, settings, routes=assignment.routes_of(db, agent.id)))


@bp.post("")
@admin_required
def create() -> tuple[str, int] | Response:
    """A new agent with their role, routes and cap; the password is theirs to change by signing in (12+ chars)."""
    email, name, role = (request.form.get(field, "") for field in ("email", "name", "role"))
    routes, cap = request.form.getlist("routes"), request.form.get("cap", "")
    db = get_session()
    try:
        with db.begin_nested():  # a refused field leaves nothing half made
            agent = actions.create_agent(db, email, request.form.get("password", ""), name=name, role=role)
            assignment.set_routes(db, agent, routes)
            assignment.set_cap(agent, _cap(cap))
    except (actions.AgentError, assignment.AssignmentError) as exc:
        form = {"email": email, "name": name, "role": role, "routes": routes, "cap": cap}
        return _page(400, error=str(exc), form=form)
    assigned = _offer_waiting(db, agent)
    log.info("agent %s created agent %s (%s)", current_agent().agent_id, agent.id, agent.role)
    flash(gettext("%(name)s can sign in now as %(role)s (%(assigned)d waiting ticket(s) assigned).",
                  name=actions.display_name(agent), role=gettext("admin") if agent.is_admin else gettext("agent"),
                  assigned=assigned), "success")
    return redirect(url_for("accounts.index"), code=303)


@bp.post("/<int:agent_id>")
@admin_required
def edit(agent_id: int) -> Response:
    """An agent's routes, cap and role, from the row's form (every field is sent: no route checked means none)."""
    with unit_of_work() as db:
        agent = _agent(agent_id)
        label = actions.display_name(agent)
        before = (assignment.routes_of(db, agent.id), agent.max_open)
        try:
            with db.begin_nested():
                routes = assignment.set_routes(db, agent, request.form.getlist("routes"))
                if "cap" in request.form:
                    assignment.set_cap(agent, _cap(request.form.get("cap")))
                role_changed = actions.set_role(db, agent, request.form.get("role") or agent.role)
        except (actions.AgentError, assignment.AssignmentError) as exc:
            flash(gettext("Nothing changed for %(name)s: %(why)s.", name=label, why=str(exc).rstrip(".")), "error")
            return redirect(url_for("accounts.index"), code=303)
        assigned = _offer_waiting(db, agent) if before != (routes, agent.max_open) else 0
        role = agent.role
    log.info("agent %s edited agent %s (role %s, routes %s, cap %s)", current_agent().agent_id, agent_id, role,
             routes, agent.max_open)
    flash(gettext("%(name)s saved (%(assigned)d waiting ticket(s) assigned).", name=label, assigned=assigned),
          "success")
    if role_changed and agent_id == current_agent().agent_id and role != "admin":
        return redirect(url_for("agents.queue"), code=303)  # no longer an admin: this page is not theirs now
    return redirect(url_for("accounts.index"), code=303)


@bp.post("/<int:agent_id>/deactivate")
@admin_required
def deactivate(agent_id: int) -> Response | tuple[str, int]:
    if agent_id == current_agent().agent_id:
        return render_template("agent/error.html", status=400, title=gettext("Not yourself"),
                               detail=gettext("You cannot deactivate your own account here: ask another admin, or "
                                              "run `furiwake deactivate-agent EMAIL` on the server.")), 400
    with unit_of_work() as db:
        agent = _agent(agent_id)
        label = actions.display_name(agent)
        try:
            changed = actions.deactivate_agent(db, agent)
        except actions.AgentError as exc:
            flash(gettext("Nothing changed: %(why)s.", why=str(exc).rstrip(".")), "error")
            return redirect(url_for("accounts.index"), code=303)
    if changed:
        log.info("agent %s deactivated agent %s", current_agent().agent_id, agent_id)
        flash(gettext("%(name)s is deactivated: signed out everywhere, API tokens revoked.", name=label), "success")
    else:
        flash(gettext("%(name)s was already deactivated.", name=label), "info")
    return redirect(url_for("accounts.index"), code=303)


@bp.post("/<int:agent_id>/activate")
@admin_required
def activate(agent_id: int) -> Response:
    with unit_of_work() as db:
        agent = _agent(agent_id)
        changed = actions.activate_agent(agent)
        label = actions.display_name(agent)
        assigned = _offer_waiting(db, agent) if changed else 0
    if changed:
        log.info("agent %s activated agent %s (%d waiting ticket(s) assigned)", current_agent().agent_id, agent_id,
                 assigned)
        flash(gettext("%(name)s can sign in again (API tokens must be created anew).", name=label), "success")
    else:
        flash(gettext("%(name)s was already active.", name=label), "info")
    return redirect(url_for("accounts.index"), code=303)


@bp.post("/<int:agent_id>/tokens/<int:token_id>/revoke")
@admin_required
def revoke_token(agent_id: int, token_id: int) -> Response:
    """One API token (a lost laptop, a retired script); the agent's other tokens and sessions stay."""
    with unit_of_work() as db:
        agent = _agent(agent_id)
        revoked = actions.revoke_token_id(db, agent, token_id)
        label = actions.display_name(agent)
    if revoked:
        log.info("agent %s revoked token %s of agent %s", current_agent().agent_id, token_id, agent_id)
        flash(gettext("Token %(id)s of %(name)s is revoked.", id=token_id, name=label), "success")
    else:
        flash(gettext("Token %(id)s of %(name)s was already revoked.", id=token_id, name=label), "info")
    return redirect(url_for("accounts.index"), code=303)
