"""Agents, CSRF-carrying forms and rows read back as stored, for the tests of the agents' pages and API."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core import agents
from core.orm import Ticket

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class AgentAccount:
    id: int
    email: str
    password: str
    token: str


def make_agent(app: Flask, email: str = "hana@example.jp", name: str | None = "Hana Sato") -> AgentAccount:
    with app.extensions["furiwake"].unit_of_work() as session:
        agent = agents.create_agent(session, email, PASSWORD, name=name)
        token = agents.issue_token(session, agent)
        return AgentAccount(agent.id, agent.email, PASSWORD, token)


def csrf_token(client: FlaskClient, url: str) -> str:
    """The token a page's forms carry (what a browser would send back)."""
    match = _CSRF.search(client.get(url).get_data(as_text=True))
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD, next_url: str | None = None):
    data = {"email": email, "password": password, "csrf_token": csrf_token(client, "/agent/login")}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/agent/login", data=data)


def post_form(client: FlaskClient, url: str, page: str, **data: str):
    """POST a form the way a browser does: with the CSRF token of the page that shows it."""
    return client.post(url, data={"csrf_token": csrf_token(client, page), **data})


def fetch(app: Flask, model: type, **where: object) -> list:
    """Rows of a table as stored (not through the code under test)."""
    with app.extensions["furiwake"].sessions() as session:
        query = select(model).filter_by(**where)
        return list(session.scalars(query.order_by(model.id)))  # type: ignore[attr-defined]


def visible_text(html: str) -> str:
    """What a person reads on the page: tags dropped, white space collapsed (entities left escaped)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def ticket_row(app: Flask, ticket_id: uuid.UUID) -> Ticket:
    with app.extensions["furiwake"].sessions() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket
