"""The Agents page (/agent/agents): who may sign in, with a button to deactivate or activate each agent.

Deactivating locks the agent out at once (core.agents.deactivate_agent: sessions ended, tokens revoked). Any
signed-in agent may use it until roles exist; nobody can deactivate themself here, so the last active agent cannot
lock the team out by one click (the CLI, run by whoever holds the server, can).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, abort, flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from api.agents import add_nav_link
from api.agents.auth import current_agent, login_required
from api.agents.web import protect_agent_page
from api.services import get_session, unit_of_work
from core import agents as actions
from core.orm import Agent

bp = Blueprint("accounts", __name__, url_prefix="/agent/agents")
bp.after_request(protect_agent_page)  # the same headers as every agents' page
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_link(app, "Agents", "accounts.index")


@bp.get("")
@login_required
def index() -> str:
    return render_template("agent/agents.html", agents=actions.list_agents(get_session()), me=current_agent())


def _agent(agent_id: int) -> Agent:
    agent = get_session().get(Agent, agent_id)
    if agent is None:
        abort(404)
    return agent


@bp.post("/<int:agent_id>/deactivate")
@login_required
def deactivate(agent_id: int) -> Response | tuple[str, int]:
    if agent_id == current_agent().agent_id:
        return render_template("agent/error.html", status=400, title="Not yourself",
                               detail="You cannot deactivate your own account here: ask another agent, or run "
                                      "`furiwake deactivate-agent EMAIL` on the server."), 400
    with unit_of_work() as db:
        agent = _agent(agent_id)
        changed = actions.deactivate_agent(db, agent)
        label = actions.display_name(agent)
    if changed:
        log.info("agent %s deactivated agent %s", current_agent().agent_id, agent_id)
        flash(f"{label} is deactivated: signed out everywhere, API tokens revoked.", "success")
    else:
        flash(f"{label} was already deactivated.", "info")
    return redirect(url_for("accounts.index"), code=303)


@bp.post("/<int:agent_id>/activate")
@login_required
def activate(agent_id: int) -> Response:
    with unit_of_work():
        agent = _agent(agent_id)
        changed = actions.activate_agent(agent)
        label = actions.display_name(agent)
    if changed:
        log.info("agent %s activated agent %s", current_agent().agent_id, agent_id)
        flash(f"{label} can sign in again (API tokens must be created anew).", "success")
    else:
        flash(f"{label} was already active.", "info")
    return redirect(url_for("accounts.index"), code=303)
