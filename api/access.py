"""Who may call what in the JSON API: `agents_only` views need an agent's bearer token, `admins_only` views an
admin's (an agent's token gets 403 there).

Tokens come from `furiwake create-token EMAIL`; the database keeps only their SHA-256 (core.agents). Sessions
and cookies play no part here (the web pages' sign-in is api.agents.auth), so the JSON API needs no CSRF token.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from copy import deepcopy
from typing import Any, NoReturn, TypeVar, cast

from flask import g, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from api.services import get_session, unit_of_work
from core.agents import verify_token
from core.orm import Agent

View = TypeVar("View", bound=Callable[..., object])

BEARER_SCHEME = "bearerAuth"
BEARER_SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An agent's API token from `furiwake create-token EMAIL`.",
}


def _refuse(detail: str, error: str | None = None) -> NoReturn:
    """401 problem+json with the RFC 6750 challenge (`error="invalid_token"` when a token was sent but is bad)."""
    parameters: dict[str, str | None] = {"realm": "furiwake"}
    if error:
        parameters["error"] = error
    refusal = Unauthorized(www_authenticate=WWWAuthenticate("Bearer", parameters))
    refusal.problem = {"detail": detail}  # type: ignore[attr-defined]
    raise refusal


def authenticate_bearer() -> int:
    """The id of the agent whose token the request carries, or a 401."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        _refuse("This endpoint is for agents: send `Authorization: Bearer <token>` (furiwake create-token EMAIL).")
    with unit_of_work() as session:
        agent = verify_token(session, token)
        agent_id = agent.id if agent is not None else None
    if agent_id is None:
        _refuse("The token is unknown or revoked, or its agent is deactivated.", error="invalid_token")
    return agent_id


def current_api_agent_id() -> int:
    """The agent behind the current request, inside a view wearing agents_only."""
    return int(g.api_agent_id)


def agents_only(view: View) -> View:
    """The view needs an agent's bearer token (401 problem+json otherwise) and says so in the OpenAPI document.

    Put it outermost, above flask-smorest's decorators: the token is checked before the body is parsed, and the
    decorators' documentation is carried over. The check and the view share the request's one unit of work, so
    the token's last use is committed with what the view does (and not at all if the view fails)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> object:
        with unit_of_work():
            g.api_agent_id = authenticate_bearer()
            return view(*args, **kwargs)

    doc: dict[str, Any] = deepcopy(getattr(view, "_apidoc", {}))
    doc.setdefault("manual_doc", {})["security"] = [{BEARER_SCHEME: []}]
    doc.setdefault("response", {}).setdefault("responses", {}).setdefault(401, []).append("UNAUTHORIZED")
    wrapper._apidoc = doc  # type: ignore[attr-defined]
    return cast(View, wrapper)


def admins_only(view: View) -> View:
    """agents_only, and the token's agent must be an admin: an agent gets 403 problem+json (401 without a valid
    token, as for agents_only). The role is read in the same unit of work as the token, so a demotion takes effect
    at the next request."""

    @functools.wraps(view)
    def check_role(*args: Any, **kwargs: Any) -> object:
        agent = get_session().get(Agent, current_api_agent_id())
        if agent is None or not agent.is_admin:
            refusal = Forbidden()
            refusal.problem = {  # type: ignore[attr-defined]
                "detail": "Only an admin can do this; your token belongs to an agent. Ask an admin of your helpdesk."}
            raise refusal
        return view(*args, **kwargs)

    guarded = agents_only(cast(View, check_role))
    doc: dict[str, Any] = deepcopy(getattr(guarded, "_apidoc", {}))
    doc.setdefault("response", {}).setdefault("responses", {}).setdefault(403, []).append("FORBIDDEN")
    guarded._apidoc = doc  # type: ignore[attr-defined]
    return guarded
