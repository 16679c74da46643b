"""Everything agents use: the web pages under /agent (sign-in, queues, ticket actions) and the JSON actions under
/api/v1/tickets/<id>/... (bearer token). `init_app` is the one call create_app makes.

See docs/agents.md; api.agents.auth explains how another page joins the agents' pages.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from flask_login import current_user
from flask_smorest import Api

NAV_EXTENSION = "furiwake_agent_nav"


def add_nav_link(app: Flask, label: str, endpoint: str, *, admin_only: bool = False) -> None:
    """A link in the agents' top bar (after Queues), e.g. add_nav_link(app, "Models", "models.index").

    admin_only: shown to admins only, for a page whose views wear api.agents.auth.admin_required (hiding the link
    is for the eye; the view's check is what refuses an agent)."""
    app.extensions.setdefault(NAV_EXTENSION, []).append((label, endpoint, admin_only))


def _nav() -> dict[str, Any]:
    is_admin = bool(getattr(current_user, "is_admin", False))
    links = current_app.extensions.get(NAV_EXTENSION, [])
    return {"agent_nav": [(label, endpoint) for label, endpoint, admin_only in links if is_admin or not admin_only]}


def init_app(app: Flask, api: Api) -> None:
    from api.access import BEARER_SCHEME, BEARER_SECURITY_SCHEME
    from api.agents import accounts, auth, language, times, web
    from api.agents import api as agent_api

    auth.init_app(app)
    times.init_app(app)  # local times on every agents' page (DISPLAY_TIMEZONE)
    language.init_app(app)  # English or Japanese, the agent's choice
    api.spec.components.security_scheme(BEARER_SCHEME, BEARER_SECURITY_SCHEME)
    api.register_blueprint(agent_api.blp)
    from api.agents import availability

    availability.init_app(app, api)  # /api/v1/agents/me/availability; ASSIGNMENT settings for the resolve hook
    app.register_blueprint(web.bp)
    add_nav_link(app, "Queues", "agents.queue")
    from api.agents import dashboard, sla_view

    sla_view.init_app(app)  # the SLA clocks in the queue and on a ticket's page
    dashboard.init_app(app, api)  # /agent/dashboard (with its nav link) and GET /api/v1/stats
    from api.agents import search_page

    app.register_blueprint(search_page.bp)  # /agent/search; the search box is in every page's top bar
    accounts.init_app(app)
    from api.agents import webhooks

    webhooks.init_app(app)  # /agent/webhooks, and publishing the deliveries requests emit
    from api.agents import rules

    rules.init_app(app)  # /agent/rules (admins): the rules tried before the model
    app.context_processor(_nav)
