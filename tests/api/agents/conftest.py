"""Agents, tokens, signed-in clients and tickets in the states the worker leaves them, on the real database.

The helpers the agents' test modules import are in tests/support/agents.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.orm import Ticket, utcnow
from tests.support.agents import AgentAccount, make_agent, sign_in


@pytest.fixture
def agent(app: Flask) -> AgentAccount:
    return make_agent(app)


@pytest.fixture
def bearer(agent: AgentAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent.token}"}


@pytest.fixture
def signed_in(client: FlaskClient, agent: AgentAccount) -> FlaskClient:
    response = sign_in(client, agent.email)
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


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
        with app.extensions["furiwake"].unit_of_work() as session:
            session.add(ticket)
        return ticket

    return add
