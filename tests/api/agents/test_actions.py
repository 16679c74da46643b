"""Re-route, resolve, assign: from the ticket page (CSRF-protected forms) and the JSON API (bearer token). Each
writes a TicketEvent; a re-route stores a Correction, the next model's training signal."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.orm import Correction, TicketEvent
from tests.support.agents import AgentAccount, fetch, make_agent, post_form, sign_in, ticket_row, visible_text
from tests.support.api import assert_problem
from tests.support.backends import both_backends


def _page(ticket) -> str:
    return f"/agent/tickets/{ticket.id}"


@both_backends
def test_reroute_from_the_ticket_page_stores_a_correction(app: Flask, signed_in: FlaskClient, agent: AgentAccount,
                                                          add_ticket) -> None:
    ticket = add_ticket("今月の請求額が二重になっています", route="Account", scores=(0.52, 0.45, 0.03))
    response = post_form(signed_in, f"{_page(ticket)}/route?queue=account", _page(ticket), route="Payment")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{_page(ticket)}?queue=account"
    [correction] = fetch(app, Correction, ticket_id=ticket.id)
    assert (correction.predicted_route, correction.corrected_route) == ("Account", "Payment")
    assert correction.agent_id == agent.id and correction.model_version == "20261124-000000-test"
    assert correction.created_at is not None
    stored = ticket_row(app, ticket.id)
    assert (stored.route, stored.status) == ("Payment", "routed")
    assert stored.score_account == 0.52  # the model's scores stay as they were
    [event] = fetch(app, TicketEvent, ticket_id=ticket.id)
    assert (event.kind, event.detail, event.agent_id) == ("rerouted", "Account → Payment", agent.id)
    page = visible_text(signed_in.get(response.headers["Location"]).get_data(as_text=True))
    assert "Routed to Payment. The correction is kept for the next model." in page
    assert "Re-routed: Account → Payment" in page and "by Hana Sato" in page
    assert "Routed by model 20261124-000000-test: Account (52%)" in page


def test_the_same_route_again_changes_nothing(app: Flask, signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket(route="Account")
    response = post_form(signed_in, f"{_page(ticket)}/route", _page(ticket), route="Account")
    assert response.status_code == 303
    assert fetch(app, Correction) == [] and fetch(app, TicketEvent) == []


@both_backends
def test_confirming_a_ticket_left_for_review_routes_it_and_is_kept(app: Flask, signed_in: FlaskClient,
                                                                   add_ticket) -> None:
    ticket = add_ticket(status="needs_review", route="Other", scores=(0.30, 0.31, 0.39))
    post_form(signed_in, f"{_page(ticket)}/route", _page(ticket), route="Other")
    assert ticket_row(app, ticket.id).status == "routed"
    [correction] = fetch(app, Correction, ticket_id=ticket.id)
    assert (correction.predicted_route, correction.corrected_route) == ("Other", "Other")
    assert [e.kind for e in fetch(app, TicketEvent)] == ["reviewed"]


def test_a_second_correction_keeps_the_models_prediction(app: Flask, signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket(route="Account", scores=(0.8, 0.1, 0.1))
    post_form(signed_in, f"{_page(ticket)}/route", _page(ticket), route="Payment")
    post_form(signed_in, f"{_page(ticket)}/route", _page(ticket), route="Other")
    corrections = fetch(app, Correction, ticket_id=ticket.id)
    assert [(c.predicted_route, c.corrected_route) for c in corrections] == [("Account", "Payment"),
                                                                              ("Account", "Other")]


def test_routing_a_ticket_the_worker_has_not_classified_yet(app: Flask, signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket(status="queued", route=None, scores=None)
    post_form(signed_in, f"{_page(ticket)}/route", _page(ticket), route="Payment")
    stored = ticket_row(app, ticket.id)
    assert (stored.status, stored.route) == ("routed", "Payment")  # no longer pending: the worker leaves it be
    assert stored.routed_at is not None
    [correction] = fetch(app, Correction)
    assert (correction.predicted_route, correction.model_version) == (None, None)


@both_backends
def test_resolve_from_the_ticket_page(app: Flask, signed_in: FlaskClient, agent: AgentAccount, add_ticket) -> None:
    ticket = add_ticket()
    assert post_form(signed_in, f"{_page(ticket)}/resolve", _page(ticket)).status_code == 303
    stored = ticket_row(app, ticket.id)
    assert stored.status == "resolved" and stored.resolved_at is not None
    post_form(signed_in, f"{_page(ticket)}/resolve", _page(ticket))  # a double click
    [event] = fetch(app, TicketEvent, ticket_id=ticket.id)
    assert (event.kind, event.agent_id) == ("resolved", agent.id)
    page = signed_in.get(_page(ticket)).get_data(as_text=True)
    assert "Resolved" in page and ">Resolve</button>" not in page


@both_backends
def test_assign_to_me_and_take_over(app: Flask, client: FlaskClient, signed_in: FlaskClient, agent: AgentAccount,
                                    add_ticket) -> None:
    ticket = add_ticket()
    post_form(signed_in, f"{_page(ticket)}/assign", _page(ticket))
    assert ticket_row(app, ticket.id).assigned_agent_id == agent.id
    page = visible_text(signed_in.get(_page(ticket)).get_data(as_text=True))
    assert "Assign to me" not in page and "Assigned by Hana Sato" in page and "Owner Hana Sato" in page

    ken = make_agent(app, "ken@example.jp", "Ken Ito")
    other = app.test_client()
    sign_in(other, ken.email)
    post_form(other, f"{_page(ticket)}/assign", _page(ticket))
    assert ticket_row(app, ticket.id).assigned_agent_id == ken.id
    events = fetch(app, TicketEvent, ticket_id=ticket.id)
    assert [(e.kind, e.agent_id, e.detail) for e in events] == [
        ("assigned", agent.id, None), ("assigned", ken.id, "taken over from Hana Sato"),
    ]  # fmt: skip
    queue = signed_in.get("/agent?queue=all").get_data(as_text=True)
    assert "Ken Ito" in queue


def test_unknown_ticket_or_route_on_the_pages(signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket()
    missing = f"/agent/tickets/{uuid.uuid4()}"
    assert signed_in.get(missing).status_code == 404
    assert post_form(signed_in, f"{missing}/resolve", _page(ticket)).status_code == 404
    assert post_form(signed_in, f"{_page(ticket)}/route", _page(ticket), route="Billing").status_code == 400


# --- JSON ---------------------------------------------------------------------------------------------------------

@both_backends
def test_json_reroute_and_resolve(app: Flask, client: FlaskClient, agent: AgentAccount, bearer, add_ticket) -> None:
    ticket = add_ticket(route="Other", scores=(0.1, 0.2, 0.7))
    response = client.post(f"/api/v1/tickets/{ticket.id}/route", json={"route": "Payment"}, headers=bearer)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["id"], body["route"], body["status"]) == (str(ticket.id), "Payment", "routed")
    [correction] = fetch(app, Correction, ticket_id=ticket.id)
    assert (correction.predicted_route, correction.corrected_route, correction.agent_id) == ("Other", "Payment",
                                                                                             agent.id)
    response = client.post(f"/api/v1/tickets/{ticket.id}/resolve", headers=bearer)
    assert response.status_code == 200
    assert response.get_json()["status"] == "resolved" and response.get_json()["resolved_at"]
    assert client.post(f"/api/v1/tickets/{ticket.id}/resolve", headers=bearer).status_code == 200  # idempotent
    assert [e.kind for e in fetch(app, TicketEvent, ticket_id=ticket.id)] == ["rerouted", "resolved"]
    listed = client.get("/api/v1/tickets?status=resolved", headers=bearer).get_json()["items"]
    assert [item["id"] for item in listed] == [str(ticket.id)]


@both_backends
@pytest.mark.parametrize(
    ("body", "status", "field"),
    [({"route": "Billing"}, 422, "route"), ({}, 422, "route"), ({"route": "Payment", "x": 1}, 422, "x"),
     ({"route": None}, 422, "route")],
)
def test_json_reroute_refuses_an_unknown_route(app: Flask, client, bearer, add_ticket, body, status, field) -> None:
    ticket = add_ticket()
    assert_problem(client.post(f"/api/v1/tickets/{ticket.id}/route", json=body, headers=bearer), status, field)
    assert fetch(app, Correction) == []


def test_json_actions_on_an_unknown_ticket_are_404_problems(client, bearer) -> None:
    missing = uuid.uuid4()
    assert_problem(client.post(f"/api/v1/tickets/{missing}/route", json={"route": "Payment"}, headers=bearer), 404)
    assert_problem(client.post(f"/api/v1/tickets/{missing}/resolve", headers=bearer), 404)
    assert_problem(client.post("/api/v1/tickets/not-a-uuid/resolve", headers=bearer), 404)


def test_json_reroute_wants_json(client, bearer, add_ticket) -> None:
    ticket = add_ticket()
    assert_problem(client.post(f"/api/v1/tickets/{ticket.id}/route", data="route=Payment", headers=bearer,
                               content_type="application/x-www-form-urlencoded"), 415)
