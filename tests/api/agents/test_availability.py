"""POST /api/v1/agents/me/availability: an agent marks themselves away or available with their bearer token; coming
back hands out what waited; a resolve through the API gives the freed slot the next waiting ticket."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from core import assignment
from core.orm import Agent, Ticket
from tests.support.agents import AgentAccount, fetch
from tests.support.backends import both_backends

URL = "/api/v1/agents/me/availability"


def _set_up(app: Flask, agent: AgentAccount, *routes: str, cap: int | None = None) -> None:
    with app.extensions["furiwake"].unit_of_work() as session:
        stored = session.get(Agent, agent.id)
        assert stored is not None
        assignment.set_routes(session, stored, routes)
        assignment.set_cap(stored, cap)


@both_backends
def test_away_then_back_hands_out_what_waited(app: Flask, client: FlaskClient, agent: AgentAccount,
                                             bearer: dict[str, str], add_ticket: Callable[..., Ticket]) -> None:
    _set_up(app, agent, "Payment")
    away = client.post(URL, json={"available": False}, headers=bearer)
    assert away.status_code == 200, away.get_data(as_text=True)
    assert away.get_json() == {"agent_id": agent.id, "email": agent.email, "available": False, "routes": ["Payment"],
                               "max_open": 10, "open_tickets": 0, "assigned_now": 0}
    ticket = add_ticket(route="Payment", scores=(0.05, 0.9, 0.05))
    back = client.post(URL, json={"available": True}, headers=bearer)
    assert back.status_code == 200
    assert back.get_json() == {**away.get_json(), "available": True, "open_tickets": 1, "assigned_now": 1}
    [stored] = fetch(app, Ticket, id=ticket.id)
    assert stored.assigned_agent_id == agent.id
    assert client.post(URL, json={"available": True}, headers=bearer).get_json()["assigned_now"] == 0
    assert client.get(URL, headers=bearer).get_json()["available"] is True


def test_a_resolve_through_the_api_gives_the_freed_slot_the_next_waiting_ticket(
        app: Flask, client: FlaskClient, agent: AgentAccount, bearer: dict[str, str],
        add_ticket: Callable[..., Ticket]) -> None:
    _set_up(app, agent, "Account", cap=1)
    first, waiting = add_ticket(), add_ticket()
    with app.extensions["furiwake"].unit_of_work() as session:
        assignment.assign_waiting(session, app.extensions["furiwake"].settings.assignment)
    assert [fetch(app, Ticket, id=t.id)[0].assigned_agent_id for t in (first, waiting)] == [agent.id, None]
    assert client.post(f"/api/v1/tickets/{first.id}/resolve", headers=bearer).status_code == 200
    [stored] = fetch(app, Ticket, id=waiting.id)
    assert stored.assigned_agent_id == agent.id


def test_bad_requests_are_problems(client: FlaskClient, bearer: dict[str, str]) -> None:
    assert client.post(URL, json={"available": True}).status_code == 401
    for body in ({"available": "yes"}, {"available": 1}, {}, {"available": True, "cap": 3}):
        response = client.post(URL, json=body, headers=bearer)
        assert response.status_code == 422, body
        assert response.mimetype == "application/problem+json"
    as_form = client.post(URL, data={"available": "true"}, headers=bearer)
    assert as_form.status_code == 415 and as_form.mimetype == "application/problem+json"
