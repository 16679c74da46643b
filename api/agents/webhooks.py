"""The Webhooks page (/agent/webhooks): the subscriptions (add, remove) and the newest deliveries with their
attempts, last status code and last error. Admins only, like the Agents page: a subscription sends customers'
tickets to another server, so an agent gets 403 and no link in the top bar.

A new subscription's secret is shown once, in the answer to the form that made it (never in a flash message: those
travel in the session cookie). init_app also makes this app publish the deliveries its requests emit, once their
unit of work commits (core.webhook_queue.publish_through). docs/webhooks.md is the receiver's side.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from api.agents import add_nav_link
from api.agents.auth import admin_required, admins_only_page, current_agent
from api.agents.web import protect_agent_page
from api.services import EXTENSION, get_session, unit_of_work
from core import webhook_outbox, webhooks
from core.webhook_queue import publish_through

bp = Blueprint("webhooks", __name__, url_prefix="/agent/webhooks")
bp.after_request(protect_agent_page)  # the same headers as every agents' page
bp.register_error_handler(403, admins_only_page)
log = logging.getLogger(__name__)
RECENT_DELIVERIES = 50


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_link(app, "Webhooks", "webhooks.index", admin_only=True)
    publish_through(app.extensions[EXTENSION])


def _page(status: int = 200, *, error: str | None = None, new_secret: str | None = None,
          form: dict[str, object] | None = None) -> tuple[str, int]:
    db = get_session()
    return render_template(
        "agent/webhooks.html", subscriptions=webhooks.list_subscriptions(db),
        deliveries=webhook_outbox.recent(db, RECENT_DELIVERIES), events=webhooks.EVENTS, error=error,
        new_secret=new_secret, form=form or {"events": list(webhooks.EVENTS)},
    ), status


@bp.get("")
@admin_required
def index() -> tuple[str, int]:
    return _page()


@bp.post("")
@admin_required
def add() -> tuple[str, int]:
    url = request.form.get("url", "")
    events = request.form.getlist("events")
    description = request.form.get("description") or None
    try:
        with unit_of_work() as db:
            subscription = webhooks.add_subscription(db, url, events, description=description)
            subscription_id, secret = subscription.id, subscription.secret
    except webhooks.WebhookError as exc:
        return _page(400, error=str(exc), form={"url": url, "events": events, "description": description})
    log.info("agent %s added webhook %s", current_agent().agent_id, subscription_id)
    return _page(201, new_secret=secret)


@bp.post("/<int:subscription_id>/remove")
@admin_required
def remove(subscription_id: int) -> Response:
    with unit_of_work() as db:
        removed = webhooks.remove_subscription(db, subscription_id)
    if removed:
        log.info("agent %s removed webhook %s", current_agent().agent_id, subscription_id)
        flash(gettext("Webhook %(id)s removed; its pending deliveries will not be sent.", id=subscription_id),
              "success")
    else:
        flash(gettext("Webhook %(id)s was already removed.", id=subscription_id), "info")
    return redirect(url_for("webhooks.index"), code=303)
