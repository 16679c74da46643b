"""The agents' Models page (/agent/models): every model version side by side, why each was promoted or rejected,
how often agents re-route what it routed, its training curves and confusion matrices; buttons to retrain now and
to roll back, for admins only (an agent sees the page without them, and a POST of theirs gets 403).

The registry (core/registry.py) does the work; it imports no TensorFlow, so neither does this page. Images are
served from the version directories under MODEL_DIR, or from the database's stored copy (core/model_store.py) when
this machine's cache lacks the version, but only for registered versions and only the known file names
(registry.IMAGES): no path from the request ever reaches the file system unchecked.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

from flask import Blueprint, Flask, abort, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_babel import gettext
from werkzeug.security import safe_join
from werkzeug.wrappers import Response

from api.agents import add_nav_link
from api.agents.auth import admin_required, admins_only_page, current_agent, login_required
from api.agents.web import protect_agent_page
from api.services import current_runtime, get_session
from core import model_store, registry
from core.artifacts import NoModelError, current_version, read_meta
from core.messaging import enqueue_retrain
from core.orm import ModelVersion, utcnow
from core.routes import ROUTES

bp = Blueprint("models", __name__, url_prefix="/agent/models")
log = logging.getLogger(__name__)

RUNNING_REFRESH_SECONDS = 15
QUEUED_REFRESH_SECONDS = 5
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_link(app, "Models", "models.index")


bp.after_request(protect_agent_page)  # the same headers as every agents' page
bp.register_error_handler(403, admins_only_page)  # retrain and rollback are for admins; the page is for everyone


@bp.context_processor
def _labels() -> dict[str, object]:
    """The registry's words (a version's status and trigger, who started a retrain) in the page's language; the
    registry keeps its own English (the CLI prints it), so they are named here by value."""
    statuses = {"candidate": gettext("candidate"), "champion": gettext("champion"), "retired": gettext("retired"),
                "rejected": gettext("rejected")}
    triggers = {"cli": gettext("command line"), "schedule": gettext("nightly"), "button": gettext("Retrain now"),
                "initial": gettext("first model")}
    started_by = {registry.STARTED_BY["button"]: gettext("an agent (Retrain now)"),
                  registry.STARTED_BY["schedule"]: gettext("the nightly schedule"),
                  registry.STARTED_BY["cli"]: gettext("the command line"), "the trainer": gettext("the trainer")}
    return {"model_status_label": lambda status: statuses.get(status, status),
            "model_trigger_label": lambda trigger: triggers.get(trigger, trigger),
            "started_by_label": lambda who: started_by.get(who, who)}


def _rows() -> list[dict[str, object]]:
    """Every version as registry.as_dict shows it, newest first, after making the registry agree with CURRENT."""
    model_dir = current_runtime().settings.model_dir
    session = get_session()  # the request's unit of work, opened by login_required
    try:
        registry.sync(session, model_dir)  # a failure rolls back its own savepoint only
    except Exception:  # noqa: BLE001 - a read-only MODEL_DIR must not take the page down
        log.warning("could not reconcile the registry with %s", model_dir, exc_info=True)
    rates = registry.override_rates(session)
    rows = []
    for row in registry.versions(session):
        shown = registry.as_dict(row, rates.get(row.version))
        shown["images"] = [name for name in registry.IMAGES if (model_dir / row.version / name).is_file()]
        if not shown["thresholds"]:
            shown["thresholds"] = _thresholds_on_disk(model_dir, row.version)
        rows.append(shown)
    return rows


def _thresholds_on_disk(model_dir: Path, version: str) -> dict[str, float]:
    """The review thresholds of a version registered before the registry kept them, from its meta.json when this
    machine has it (nothing otherwise: the page then shows none rather than guessing)."""
    try:
        return dict(read_meta(model_dir / version).thresholds)
    except (NoModelError, ValueError, OSError):
        return {}


def _serving(model_dir: Path, champion: dict[str, object] | None) -> dict[str, object] | None:
    """The version the workers serve (MODEL_DIR/CURRENT, what they follow) when the registry does not say so
    itself: sync() could not record it (an unreadable meta.json, a database busy elsewhere), so the page shows
    what routes now instead of claiming there is no model."""
    version = current_version(model_dir)
    if version is None or (champion is not None and champion["version"] == version):
        return None
    try:
        created_at: object = read_meta(model_dir / version).created_at
    except (NoModelError, ValueError):
        created_at = None
    return {"version": version, "created_at": created_at}


@bp.get("")
@login_required
def index() -> str:
    rows = _rows()
    champion = next((row for row in rows if row["status"] == "champion"), None)
    running = registry.lease_state(get_session())
    # Reload while a retrain runs (CSP allows no inline script; a meta refresh needs none), and once shortly after
    # the button, when the trainer may not have taken the lease yet: the page then shows the decision by itself.
    refresh = RUNNING_REFRESH_SECONDS if running else QUEUED_REFRESH_SECONDS if request.args.get("queued") else None
    return render_template(
        "agent/models.html", rows=rows, champion=champion, routes=ROUTES, now=utcnow(), running=running,
        serving=_serving(current_runtime().settings.model_dir, champion), refresh_seconds=refresh,
        threshold_overrides=current_runtime().settings.review_thresholds,
        agent=current_agent(),
    )


@bp.get("/versions.json")
@login_required
def versions_json() -> Response:
    return jsonify(_rows())


@bp.get("/<version>/<name>")
@login_required
def image(version: str, name: str) -> Response:
    if name not in registry.IMAGES or not _VERSION.match(version):
        abort(404)
    if get_session().get(ModelVersion, version) is None:
        abort(404)
    path = safe_join(str(current_runtime().settings.model_dir), version, name)
    if path is None:
        abort(404)
    try:
        return send_file(path, mimetype="image/png", max_age=0)
    except FileNotFoundError:
        return _stored_image(version, name)


def _stored_image(version: str, name: str) -> Response:
    """A plot this machine's MODEL_DIR lacks (its version was trained elsewhere and never fetched here), from the
    database: the Models page looks the same on every machine."""
    try:
        content = model_store.read_file(get_session(), version, name)
    except model_store.ArtifactError as exc:
        log.error("%s", exc)
        abort(404)
    if content is None:
        abort(404)
    return send_file(io.BytesIO(content), mimetype="image/png", max_age=0, download_name=name)


@bp.post("/retrain")
@admin_required
def retrain() -> Response:
    """Ask the trainer for a retrain (the `training` queue); the page shows it running and then its decision."""
    try:
        task_id = enqueue_retrain(current_runtime().celery, trigger="button")
    except Exception as exc:  # noqa: BLE001 - whatever the broker raised, the agent gets a sentence, not a 500
        log.warning("retrain not queued: %s: %s", type(exc).__name__, exc)
        flash(gettext("The retrain could not be queued: the message broker is unreachable. Try again shortly."),
              "error")
    else:
        log.info("agent %s queued a retrain (task %s)", current_agent().agent_id, task_id)
        flash(gettext("Retrain queued. The trainer compares the new model with the champion and promotes it only if "
                      "it is better; its decision appears here."), "success")
        return redirect(url_for("models.index", queued=1), code=303)
    return redirect(url_for("models.index"), code=303)


@bp.post("/rollback")
@admin_required
def rollback() -> Response:
    """Make the previous champion (or the version named in the form) serve again; workers switch within seconds."""
    target = request.form.get("to") or None
    if target is not None and not _VERSION.match(target):
        abort(400)
    try:
        # In login_required's unit of work; a refused rollback undoes its own savepoint, nothing else.
        old, new = registry.rollback(get_session(), current_runtime().settings.model_dir, to=target,
                                     actor=current_agent().email)
    except registry.RegistryError as exc:
        flash(gettext("Nothing changed: %(reason)s.", reason=exc), "error")
    else:
        log.info("agent %s made %s the champion (was %s)", current_agent().agent_id, new, old)
        flash(gettext("%(new)s is the champion again (was %(old)s). Workers switch to it within seconds.", new=new,
                      old=old), "success")
    return redirect(url_for("models.index"), code=303)
