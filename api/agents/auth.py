"""Agents' sign-in for the web pages: flask-login sessions, CSRF on every form, the session cookie's flags.

For another page meant for agents (a Models page, say), this is the whole contract:

    from api.agents.auth import current_agent, login_required

    @bp.get("/agent/models")
    @login_required
    def models() -> str:
        return render_template("agent/models.html", agent=current_agent())   # extends "agent/base.html"

and, for a link in the top bar, `api.agents.add_nav_link(app, "Models", "models.index")` where the blueprint is
registered. A page for admins only wears `admin_required` instead (an agent gets 403) and its link
`add_nav_link(..., admin_only=True)`. A signed-out browser is sent to the sign-in page and back afterwards; a
script's fetch (header `X-Requested-With: fetch`) gets a 401 instead of a redirect. Any POST outside /api/ needs
the CSRF token (`<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">`) or it is refused with a 400.

The JSON API does not use these sessions: it takes bearer tokens (api.access.agents_only), so no cookie can be
borrowed by another site to call it, which is why CSRF checks stop at /api/.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import flask_login
from flask import Flask, Request, Response, abort, flash, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from api.i18n import pick_language
from api.services import unit_of_work
from core.agents import session_fingerprint
from core.orm import Agent

View = TypeVar("View", bound=Callable[..., object])

csrf = CSRFProtect()
login_manager = flask_login.LoginManager()
# Agents keep the tool open all day: a session lasts a working day, renewed by every request.
SESSION_LIFETIME = timedelta(hours=12)
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class AgentUser(flask_login.UserMixin):
    """The signed-in agent as flask-login sees it; a plain value, so no ORM object outlives its request."""

    agent_id: int
    email: str
    name: str | None
    fingerprint: str
    role: str = "agent"
    language: str | None = None  # the agent's own choice for their pages; None: the browser's Accept-Language

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def get_id(self) -> str:
        return f"{self.agent_id}.{self.fingerprint}"

    @property
    def display_name(self) -> str:
        return self.name or self.email

    @classmethod
    def of(cls, agent: Agent) -> AgentUser:
        return cls(agent.id, agent.email, agent.name, session_fingerprint(agent), agent.role, agent.language)


def login_required(view: View) -> View:
    """The view is for signed-in agents only (flask-login's decorator, with this app's answer to strangers).

    Loading the agent and the view share the request's one unit of work (api.services.unit_of_work)."""
    guarded = flask_login.login_required(view)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with unit_of_work():
            return guarded(*args, **kwargs)

    return cast(View, wrapper)


def admin_required(view: View) -> View:
    """The view is for signed-in admins only: an agent gets 403 (a page, or problem+json for a JSON client); a
    stranger is sent to sign in as with login_required."""

    @functools.wraps(view)
    def check_role(*args: Any, **kwargs: Any) -> Any:
        if not current_agent().is_admin:
            abort(403, description=gettext("Only an admin can do this. Ask an admin of your helpdesk."))
        return view(*args, **kwargs)

    return login_required(cast(View, check_role))


def admins_only_page(error: HTTPException) -> ResponseReturnValue:
    """The 403 admin_required raises, as an agents' page saying why (a blueprint of admins' pages registers it:
    `bp.register_error_handler(403, admins_only_page)`)."""
    return render_template("agent/error.html", status=403, title=gettext("Admins only"),
                           detail=error.description), 403


def current_agent() -> AgentUser:
    """The signed-in agent, inside a view wearing login_required."""
    return cast(AgentUser, flask_login.current_user._get_current_object())  # type: ignore[attr-defined]


@login_manager.user_loader
def _load_agent(user_id: str) -> AgentUser | None:
    """The session holds `id.fingerprint`; a changed password, a sign-out anywhere or a deactivated agent ends the
    session (core.agents.session_fingerprint), so a cookie copied before sign-out is refused at once."""
    raw_id, _, fingerprint = user_id.partition(".")
    if not raw_id.isdigit():
        return None
    with unit_of_work() as session:
        agent = session.get(Agent, int(raw_id))
    if agent is None or not agent.active or session_fingerprint(agent) != fingerprint:
        return None
    return AgentUser.of(agent)


@login_manager.unauthorized_handler
def _unauthorized() -> ResponseReturnValue:
    if request.headers.get("X-Requested-With") == "fetch":
        return Response("Signed out.", 401, {"Content-Type": "text/plain; charset=utf-8"})
    flash(gettext("Please sign in."), "info")
    return redirect(url_for("agents.login", next=request.full_path.rstrip("?")))


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: `next` must not turn the sign-in page into an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def is_loopback(host: str) -> bool:
    return (urlsplit("//" + host).hostname or "") in _LOOPBACK


class AgentSessionInterface(SecureCookieSessionInterface):
    """Decides the session cookie's Secure flag per request.

    Secure, except under tests and for plain HTTP to this machine itself (`make run` on http://127.0.0.1:8000).
    Anywhere else the service is meant to be behind HTTPS; reached over plain HTTP from the network, the browser
    drops the Secure cookie and sign-in fails (the sign-in page says so) rather than sending a session in clear.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.testing:
            return False
        return request.is_secure or not is_loopback(request.host)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Flask's, without building the signing serializer (nor parsing cookies, when there is no Cookie header)
        for a request that has no session cookie, as an API client's or a webhook's: an empty session, which is
        what Flask's own answer would be."""
        if app.secret_key and not (
            request.environ.get("HTTP_COOKIE") and request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Flask's, without working out the cookie's attributes for a session that is empty and unchanged: it
        sets no cookie then, only `Vary: Cookie` when the session was read."""
        if not session and not session.modified:
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def cookie_will_be_dropped() -> bool:
    """The browser will refuse our Secure session cookie: plain HTTP from somewhere other than this machine."""
    from flask import current_app

    return not current_app.testing and not request.is_secure and not is_loopback(request.host)


def _csrf_refused(error: CSRFError) -> ResponseReturnValue:
    """A form without a valid CSRF token: 400, but never losing what a customer typed."""
    if request.endpoint == "web.submit":
        lang = pick_language()
        values = {name: request.form.get(name, "") for name in ("subject", "customer_email", "body")}
        expired = gettext("This page had expired, so nothing was sent. Please check your message and send it again.")
        page = render_template("form.html", lang=lang, values=values, errors=[expired])
        return page, 400
    return render_template("agent/error.html", status=400, title=gettext("Form expired"),
                           detail=gettext("This form was sent without a valid security token (the page may have been "
                                          "open since before you signed in again). Go back, reload the page and try "
                                          "again.")), 400


def _check_csrf() -> None:
    """Every state-changing request outside /api/ carries the token. /api/ takes no cookies, so it cannot be
    forged from another site; a webhook mounted elsewhere must call `csrf.exempt` on its blueprint."""
    if not request.path.startswith("/api/"):
        csrf.protect(apply_exemptions=True)


def init_app(app: Flask) -> None:
    app.config.update(
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        # CSRFProtect's own before_request would also guard /api/; _check_csrf does instead.
        WTF_CSRF_CHECK_DEFAULT=False,
        # The token lives as long as the session: a ticket page left open over lunch must still resolve.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.session_interface = AgentSessionInterface()
    csrf.init_app(app)
    app.before_request(_check_csrf)
    app.register_error_handler(CSRFError, _csrf_refused)
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
