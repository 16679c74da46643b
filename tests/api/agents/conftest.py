"""Agents, tokens, signed-in clients and tickets in the states the worker leaves them, on the real database."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core import agents
from core.db import transaction
from core.orm import Ticket, utcnow
from tests.e2e.conftest import (
    Processes,
    processes,  # noqa: F401 - the real-process fixture, for test_agents_e2e
    wait_until,
)

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class AgentAccount:
    id: int
    email: str
    password: str
    token: str


def make_agent(app: Flask, email: str = "hana@example.jp", name: str | None = "Hana Sato") -> AgentAccount:
    with transaction(app.extensions["furiwake"].session_factory) as session:
        agent = agents.create_agent(session, email, PASSWORD, name=name)
        token = agents.issue_token(session, agent)
        return AgentAccount(agent.id, agent.email, PASSWORD, token)


@pytest.fixture
def agent(app: Flask) -> AgentAccount:
    return make_agent(app)


@pytest.fixture
def bearer(agent: AgentAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent.token}"}


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


@pytest.fixture
def signed_in(client: FlaskClient, agent: AgentAccount) -> FlaskClient:
    response = sign_in(client, agent.email)
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def post_form(client: FlaskClient, url: str, page: str, **data: str):
    """POST a form the way a browser does: with the CSRF token of the page that shows it."""
    return client.post(url, data={"csrf_token": csrf_token(client, page), **data})


@pytest.fixture
def add_ticket(app: Flask) -> Callable[..., Ticket]:
    """Insert a ticket as the worker would leave it: route=... with scores gives a routed ticket."""
    start = utcnow() - timedelta(hours=2)
    made = {"n": 0}

    def add(body: str = "パスワードを忘れました", *, status: str = "routed", route: str | None = "Account",
            scores: tuple[float, float, float] | None = (0.91, 0.06, 0.03), subject: str | None = None,
            channel: str = "web", model_version: str | None = "20261124-000000-test", **extra: object) -> Ticket:
        made["n"] += 1
        ticket = Ticket(
            channel=channel, body=body, subject=subject, status=status, route=route,
            created_at=start + timedelta(minutes=made["n"]),
            routed_at=start + timedelta(minutes=made["n"], seconds=1) if route else None, attempts=1,
            model_version=model_version if scores else None,
            confidence=max(scores) if scores else None,
            score_account=scores[0] if scores else None, score_payment=scores[1] if scores else None,
            score_other=scores[2] if scores else None, **extra,
        )  # fmt: skip
        with app.extensions["furiwake"].session_factory.begin() as session:
            session.add(ticket)
        return ticket

    return add


def fetch(app: Flask, model: type, **where: object) -> list:
    """Rows of a table as stored (not through the code under test)."""
    from sqlalchemy import select

    with app.extensions["furiwake"].session_factory() as session:
        query = select(model).filter_by(**where)
        return list(session.scalars(query.order_by(model.id)))  # type: ignore[attr-defined]


def visible_text(html: str) -> str:
    """What a person reads on the page: tags dropped, white space collapsed (entities left escaped)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def ticket_row(app: Flask, ticket_id: uuid.UUID) -> Ticket:
    with app.extensions["furiwake"].session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket


def wait_for_worker_model(procs: Processes, timeout: float = 120) -> None:
    """Until the worker's process has loaded its model. A message published while the worker was still starting
    was seen to wait for the sweep (worker-side, reported); the agents' tests are not about that."""
    [log] = [log for name, _child, log in procs.children if name == "worker"]
    wait_until(lambda: "loaded in" in log.read_text(errors="replace"), timeout, procs, "the worker's model")
