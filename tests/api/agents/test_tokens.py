"""Bearer tokens for the agents' JSON API: only their SHA-256 is stored; missing, wrong or revoked → 401."""

from __future__ import annotations

import hashlib

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from core import agents
from core.orm import Agent, ApiToken
from tests.support.agents import AgentAccount, fetch, make_agent
from tests.support.api import assert_problem
from tests.support.backends import both_backends

AGENT_ENDPOINTS = [
    ("get", "/api/v1/tickets", None),
    ("post", "/api/v1/tickets/{id}/route", {"route": "Payment"}),
    ("post", "/api/v1/tickets/{id}/resolve", None),
]


def _call(client: FlaskClient, method: str, url: str, body: dict | None, headers: dict[str, str], ticket_id: str):
    return getattr(client, method)(url.format(id=ticket_id), json=body, headers=headers)


@both_backends
def test_only_the_hash_is_stored_and_the_token_works(app: Flask, client: FlaskClient, agent: AgentAccount) -> None:
    [row] = fetch(app, ApiToken, agent_id=agent.id)
    assert agent.token.startswith("fwk_") and len(agent.token) > 40
    assert row.token_hash == hashlib.sha256(agent.token.encode()).hexdigest()
    assert row.last_used_at is None
    response = client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {agent.token}"})
    assert response.status_code == 200
    assert fetch(app, ApiToken, agent_id=agent.id)[0].last_used_at is not None


@both_backends
@pytest.mark.parametrize(("method", "url", "body"), AGENT_ENDPOINTS)
def test_missing_token_is_a_401_problem_with_a_bearer_challenge(client, add_ticket, method, url, body) -> None:
    ticket = add_ticket()
    for headers in ({}, {"Authorization": ""}, {"Authorization": "Basic aGFuYTpwdw=="}, {"Authorization": "Bearer"}):
        response = _call(client, method, url, body, headers, str(ticket.id))
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "invalid_token" not in response.headers["WWW-Authenticate"]


@both_backends
@pytest.mark.parametrize(("method", "url", "body"), AGENT_ENDPOINTS)
def test_wrong_or_revoked_token_is_a_401(app: Flask, client, agent: AgentAccount, add_ticket, method, url,
                                         body) -> None:
    ticket = add_ticket()
    with app.extensions["furiwake"].sessions.begin() as session:
        revoked = agents.issue_token(session, session.get(Agent, agent.id))
        assert agents.revoke_token(session, revoked)
    for token in ("fwk_" + "x" * 43, agent.token + "x", agent.token.removeprefix("fwk_"), revoked):
        response = _call(client, method, url, body, {"Authorization": f"Bearer {token}"}, str(ticket.id))
        assert_problem(response, 401)
        assert "error=invalid_token" in response.headers["WWW-Authenticate"].replace('"', '')


def test_a_deactivated_agents_token_stops_working(app: Flask, client, agent: AgentAccount) -> None:
    with app.extensions["furiwake"].sessions.begin() as session:
        session.execute(update(Agent).where(Agent.id == agent.id).values(active=False))
    assert_problem(client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {agent.token}"}), 401)


def test_revoking_all_of_an_agents_tokens(app: Flask, client, agent: AgentAccount) -> None:
    other = make_agent(app, "ken@example.jp")
    with app.extensions["furiwake"].sessions.begin() as session:
        assert agents.revoke_tokens(session, session.get(Agent, agent.id)) == 1
    assert_problem(client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {agent.token}"}), 401)
    assert client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {other.token}"}).status_code == 200


def test_the_token_is_checked_before_the_body(client) -> None:
    response = client.post("/api/v1/tickets/00000000-0000-0000-0000-000000000000/route", data="not json",
                           content_type="text/plain")
    assert_problem(response, 401)


def test_a_session_cookie_does_not_open_the_json_api(signed_in: FlaskClient) -> None:
    assert_problem(signed_in.get("/api/v1/tickets"), 401)


def test_the_openapi_document_names_the_bearer_scheme(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An agent's API token from `furiwake create-token EMAIL`.",
    }  # fmt: skip
    paths = document["paths"]
    for path, method in [("/api/v1/tickets", "get"), ("/api/v1/tickets/{ticket_id}/route", "post"),
                         ("/api/v1/tickets/{ticket_id}/resolve", "post")]:
        operation = paths[path][method]
        assert operation["security"] == [{"bearerAuth": []}], path
        assert "401" in operation["responses"], path
    route_body = paths["/api/v1/tickets/{ticket_id}/route"]["post"]["requestBody"]["content"]["application/json"]
    schema = document["components"]["schemas"][route_body["schema"]["$ref"].rsplit("/", 1)[-1]]
    assert schema["properties"]["route"]["enum"] == ["Account", "Payment", "Other"]
    assert {"404", "422"} <= set(paths["/api/v1/tickets/{ticket_id}/route"]["post"]["responses"])
    # The customers' endpoints stay open.
    assert "security" not in paths["/api/v1/tickets"]["post"]
    assert paths["/api/v1/tickets/{ticket_id}"]["get"]["security"] == [{}, {"bearerAuth": []}]  # a token: more
