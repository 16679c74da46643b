"""The Rules page (/agent/rules), admins only: the ordered rules applied before the model (core/rules.py), a form to
create or edit one, move up / down, deactivate / activate, each rule's saved versions, and a Test form that says
which rule a sample ticket would match.

The edit and create forms carry a sample too: "Test" tries the rule as typed against it without saving (a bad rule
is refused exactly as a save would refuse it), so an admin sees what a change does before it routes anything.
Bad input is a 400 with a flashed message and the form as typed, never an error page.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from api.agents import add_nav_link
from api.agents.auth import admin_required, current_agent
from api.agents.web import protect_agent_page
from api.services import get_session, unit_of_work
from core import agents as actions
from core import rules
from core.orm import CHANNELS, Rule
from core.routes import ROUTES

bp = Blueprint("rules", __name__, url_prefix="/agent/rules")
bp.after_request(protect_agent_page)  # the same headers as every agents' page
log = logging.getLogger(__name__)

SAMPLE_FIELDS = ("sender", "recipient", "subject", "body", "channel")
SAMPLE_MAX = 20_000


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_link(app, "Rules", "rules.index", admin_only=True)


# --- reading the forms ------------------------------------------------------------------------------------------

def _form_spec() -> rules.RuleSpec:
    raw_assignee = (request.form.get("assignee_agent_id") or "").strip()
    if raw_assignee and not raw_assignee.isdigit():
        raise rules.RuleError("The assignee must be an active agent")
    return rules.RuleSpec(
        name=request.form.get("name", ""), sender=request.form.get("sender"),
        recipient=request.form.get("recipient"), subject_contains=request.form.get("subject_contains"),
        body_contains=request.form.get("body_contains"), channel=request.form.get("channel"),
        route=request.form.get("route"), assignee_agent_id=int(raw_assignee) if raw_assignee else None,
    )  # fmt: skip


def _sample() -> dict[str, str]:
    return {name: (request.form.get(f"sample_{name}") or "")[:SAMPLE_MAX] for name in SAMPLE_FIELDS}


def _facts(sample: dict[str, str]) -> rules.Facts:
    channel = sample["channel"] if sample["channel"] in CHANNELS else "email"
    return rules.Facts(channel=channel, sender=sample["sender"].strip() or None,
                       recipient=sample["recipient"].strip() or None, subject=sample["subject"] or None,
                       body=sample["body"])  # fmt: skip


def _form_values(rule: Rule | None) -> dict[str, Any]:
    """What the edit form shows: the rule as stored (a domain sender shown as "@domain"), or what was typed."""
    if request.method == "POST":
        return {name: request.form.get(name, "") for name in (
            "name", "sender", "recipient", "subject_contains", "body_contains", "channel", "route",
            "assignee_agent_id")}  # fmt: skip
    if rule is None:
        return {}
    return {name: "" if value is None else str(value) for name, value in asdict(rules.spec_of(rule)).items()}


def describe(rule: object) -> str:
    """A rule's conditions in words: a stored rule, or a version's snapshot (a dict)."""
    def value(name: str) -> Any:
        return rule.get(name) if isinstance(rule, dict) else getattr(rule, name, None)

    parts = []
    if value("sender"):
        parts.append(gettext("sender %(value)s", value=value("sender")))
    if value("recipient"):
        parts.append(gettext("sent to %(value)s", value=value("recipient")))
    if value("subject_contains"):
        parts.append(gettext("subject contains “%(value)s”", value=value("subject_contains")))
    if value("body_contains"):
        parts.append(gettext("body contains “%(value)s”", value=value("body_contains")))
    if value("channel"):
        parts.append(gettext("channel %(value)s", value=value("channel")))
    return gettext(" and ").join(parts)


# --- the page ---------------------------------------------------------------------------------------------------

def _page(status: int = 200, *, editing: Rule | None = None, test: dict[str, Any] | None = None) -> tuple[str, int]:
    db = get_session()
    return render_template(
        "agent/rules.html", describe=describe, rules=rules.list_rules(db), names=actions.agent_names(db),
        agents=rules.assignable_agents(db), routes=ROUTES, channels=CHANNELS, editing=editing,
        versions=rules.versions(db, editing.id) if editing is not None else [], form=_form_values(editing),
        sample=_sample() if request.method == "POST" else dict.fromkeys(SAMPLE_FIELDS, ""), test=test,
    ), status


def _rule(rule_id: int) -> Rule:
    try:
        return rules.get_rule(get_session(), rule_id)
    except rules.RuleNotFound:
        abort(404)


@bp.get("")
@admin_required
def index() -> tuple[str, int]:
    return _page()


@bp.get("/<int:rule_id>")
@admin_required
def edit(rule_id: int) -> tuple[str, int]:
    return _page(editing=_rule(rule_id))


def _try_draft(editing: Rule | None) -> tuple[str, int]:
    """The "Test" button of the create / edit form: the rule as typed, against the sample, nothing saved."""
    try:
        draft = rules.validate(get_session(), _form_spec())
    except rules.RuleError as exc:
        flash(gettext("Cannot test this rule: %(reason)s", reason=str(exc)), "error")
        return _page(400, editing=editing)
    matched = rules.matches(draft, _facts(_sample()))
    return _page(editing=editing, test={"draft": True, "matched": matched, "name": draft.name})


@bp.post("")
@admin_required
def create() -> Response | tuple[str, int]:
    if request.form.get("action") == "test":
        return _try_draft(None)
    try:
        with unit_of_work() as db:
            rule = rules.create_rule(db, _form_spec(), current_agent().agent_id)
            name = rule.name
    except rules.RuleError as exc:
        flash(gettext("Not saved: %(reason)s", reason=str(exc)), "error")
        return _page(400)
    log.info("agent %s created rule %s", current_agent().agent_id, name)
    flash(gettext("Rule «%(name)s» saved (v1); it applies to tickets routed from now on.", name=name), "success")
    return redirect(url_for("rules.index"), code=303)


@bp.post("/<int:rule_id>")
@admin_required
def save(rule_id: int) -> Response | tuple[str, int]:
    editing = _rule(rule_id)
    if request.form.get("action") == "test":
        return _try_draft(editing)
    try:
        with unit_of_work() as db:
            rule, changed = rules.update_rule(db, rule_id, _form_spec(), current_agent().agent_id)
            name, version = rule.name, rule.version
    except rules.RuleError as exc:
        flash(gettext("Not saved: %(reason)s", reason=str(exc)), "error")
        return _page(400, editing=editing)
    if changed:
        flash(gettext("Rule «%(name)s» saved as v%(version)s.", name=name, version=version), "success")
    else:
        flash(gettext("Nothing changed: rule «%(name)s» stays v%(version)s.", name=name, version=version), "info")
    return redirect(url_for("rules.edit", rule_id=rule_id), code=303)


@bp.post("/<int:rule_id>/move")
@admin_required
def move(rule_id: int) -> Response:
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        flash(gettext("Move a rule up or down."), "error")
        return redirect(url_for("rules.index"), code=303)
    try:
        with unit_of_work() as db:
            moved = rules.move(db, rule_id, -1 if direction == "up" else 1)
    except rules.RuleNotFound:
        abort(404)
    if not moved:
        flash(gettext("The rule is already at the end of the list."), "info")
    return redirect(url_for("rules.index"), code=303)


@bp.post("/<int:rule_id>/active")
@admin_required
def set_active(rule_id: int) -> Response:
    active = request.form.get("active") == "1"
    try:
        with unit_of_work() as db:
            rule, changed = rules.set_active(db, rule_id, active, current_agent().agent_id)
            name, version = rule.name, rule.version
    except rules.RuleNotFound:
        abort(404)
    except rules.RuleError as exc:
        flash(gettext("Not activated: %(reason)s", reason=str(exc)), "error")
        return redirect(url_for("rules.index"), code=303)
    if changed:
        message = (gettext("Rule «%(name)s» is active again (v%(version)s).", name=name, version=version) if active
                   else gettext("Rule «%(name)s» is deactivated (v%(version)s); tickets it routed keep it.",
                                name=name, version=version))  # fmt: skip
        flash(message, "success")
    return redirect(url_for("rules.index"), code=303)


@bp.post("/test")
@admin_required
def test() -> tuple[str, int]:
    """Which saved rule a sample ticket would match: the first active one, in order, as the worker tries them."""
    matched = rules.match(rules.list_rules(get_session()), _facts(_sample()))
    return _page(test={"draft": False, "matched": matched is not None, "rule": matched})
