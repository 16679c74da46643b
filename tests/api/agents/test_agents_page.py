"""The Agents page as an admin uses it: add an agent with routes and a cap, edit routes, cap and role (waiting
tickets go out at once), deactivate (a live session ends at once), revoke one token; and the top bar's Available /
Away switch every agent has. Hana (the conftest's agent, the first) is the admin."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from core import agents, assignment
from core.orm import Agent, ApiToken, Ticket
from tests.support.agents import (
    AgentAccount,
    csrf_token,
    fetch,
    make_agent,
    post_form,
    sign_in,
    ticket_row,
    visible_text,
)
from tests.support.backends import both_backends

PAGE = "/agent/agents"
NEW_PASSWORD = "another long password"


def _routes(app: Flask, agent_id: int) -> list[str]:
    with app.extensions["furiwake"].sessions() as session:
        return assignment.routes_of(session, agent_id)


def _stored(app: Flask, email: str) -> Agent:
    [agent] = [a for a in fetch(app, Agent) if a.email == email]
    return agent


def _api(app: Flask, token: str) -> int:
    return app.test_client().get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"}).status_code


@both_backends
def test_adding_an_agent_with_routes_and_a_cap_gives_them_what_waits(
        app: Flask, signed_in: FlaskClient, add_ticket: Callable[..., Ticket]) -> None:
    waiting = add_ticket(route="Payment", scores=(0.05, 0.9, 0.05))
    data = {"email": "Ken@Example.jp", "name": "Ken Ito", "password": NEW_PASSWORD, "role": "agent",
            "routes": ["Payment", "Other"], "cap": "3", "csrf_token": csrf_token(signed_in, PAGE)}
    response = signed_in.post(PAGE, data=data)
    assert response.status_code == 303 and response.headers["Location"] == PAGE
    ken = _stored(app, "ken@example.jp")
    assert (ken.name, ken.role, ken.max_open, ken.active) == ("Ken Ito", "agent", 3, True)
    assert _routes(app, ken.id) == ["Payment", "Other"]
    assert ticket_row(app, waiting.id).assigned_agent_id == ken.id  # offered at once, not at the next pass
    assert sign_in(app.test_client(), ken.email, NEW_PASSWORD).status_code == 303

    text = visible_text(signed_in.get(PAGE).get_data(as_text=True))
    assert "Ken Ito can sign in now as agent (1 waiting ticket(s) assigned)" in text
    html = signed_in.get(PAGE).get_data(as_text=True)
    assert f'<tr data-agent="{ken.id}">' in html
    row = html.split(f'<tr data-agent="{ken.id}">')[1].split("</tr>")[0]
    assert 'data-role="agent"' in row and 'data-routes="Payment Other"' in row and 'data-cap="3"' in row
    assert "<td>1</td>" in row  # one open ticket


def test_adding_an_agent_refuses_bad_input_and_keeps_what_was_typed(app: Flask, signed_in: FlaskClient) -> None:
    base = {"email": "ken@example.jp", "name": "Ken Ito", "password": NEW_PASSWORD, "role": "agent", "cap": ""}
    cases: dict[str, dict[str, str | list[str]]] = {
        "at least 12 characters": {"password": "short"},
        "not an e-mail address": {"email": "ken"},
        "unknown route": {"routes": ["Shipping"]},
        "whole number from 1": {"cap": "many"},
        "at least 1": {"cap": "0"},
        "unknown role": {"role": "owner"},
    }
    for message, change in cases.items():
        data = {**base, **change, "csrf_token": csrf_token(signed_in, PAGE)}
        response = signed_in.post(PAGE, data=data)
        html = response.get_data(as_text=True)
        assert response.status_code == 400, message
        assert message in html, message
        assert 'value="Ken Ito"' in html and NEW_PASSWORD not in html
        assert [a.email for a in fetch(app, Agent)] == ["hana@example.jp"], message  # nothing half made
    data = {**base, "email": "hana@example.jp", "csrf_token": csrf_token(signed_in, PAGE)}
    assert "already exists" in signed_in.post(PAGE, data=data).get_data(as_text=True)


@both_backends
def test_editing_routes_cap_and_role(app: Flask, signed_in: FlaskClient, add_ticket: Callable[..., Ticket]) -> None:
    ken = make_agent(app, "ken@example.jp", "Ken Ito")
    first, second = add_ticket(), add_ticket()
    response = post_form(signed_in, f"{PAGE}/{ken.id}", PAGE, routes="Account", cap="1", role="admin")
    assert response.status_code == 303
    stored = _stored(app, ken.email)
    assert (stored.role, stored.max_open, _routes(app, ken.id)) == ("admin", 1, ["Account"])
    # The cap lets one of the two waiting tickets go to him now; the other waits.
    assert [ticket_row(app, t.id).assigned_agent_id for t in (first, second)] == [ken.id, None]

    assert post_form(signed_in, f"{PAGE}/{ken.id}", PAGE, routes="Account", cap="", role="admin").status_code == 303
    assert _stored(app, ken.email).max_open is None  # back to the default cap: the second one goes to him too
    assert ticket_row(app, second.id).assigned_agent_id == ken.id

    post_form(signed_in, f"{PAGE}/{ken.id}", PAGE, cap="", role="agent")  # no route ticked: none
    stored = _stored(app, ken.email)
    assert (stored.role, _routes(app, ken.id)) == ("agent", [])

    refused = post_form(signed_in, f"{PAGE}/{ken.id}", PAGE, routes="Account", cap="-2", role="agent")
    assert refused.status_code == 303
    assert "Nothing changed for Ken Ito" in visible_text(signed_in.get(PAGE).get_data(as_text=True))
    assert _routes(app, ken.id) == []  # the refused cap undid the routes sent with it


def test_the_last_admin_cannot_be_demoted_but_can_hand_over(app: Flask, signed_in: FlaskClient,
                                                            agent: AgentAccount) -> None:
    post_form(signed_in, f"{PAGE}/{agent.id}", PAGE, role="agent", cap="")
    assert "last active admin" in visible_text(signed_in.get(PAGE).get_data(as_text=True))
    assert _stored(app, agent.email).role == "admin"

    ken = make_agent(app, "ken@example.jp", "Ken Ito")
    post_form(signed_in, f"{PAGE}/{ken.id}", PAGE, role="admin", cap="")
    handed_over = post_form(signed_in, f"{PAGE}/{agent.id}", PAGE, role="agent", cap="")
    assert handed_over.status_code == 303 and handed_over.headers["Location"] == "/agent/"
    assert _stored(app, agent.email).role == "agent"
    assert signed_in.get(PAGE).status_code == 403


@both_backends
def test_deactivating_ends_a_live_session_at_once(app: Flask, signed_in: FlaskClient) -> None:
    ken = make_agent(app, "ken@example.jp", "Ken Ito")
    browser = app.test_client()
    assert sign_in(browser, ken.email).status_code == 303 and browser.get("/agent").status_code == 200
    assert post_form(signed_in, f"{PAGE}/{ken.id}/deactivate", PAGE).status_code == 303
    assert browser.get("/agent").status_code == 302  # the very next request, signed out
    assert _api(app, ken.token) == 401
    assert post_form(signed_in, f"{PAGE}/{ken.id}/activate", PAGE).status_code == 303
    assert sign_in(browser, ken.email).status_code == 303


def test_deactivating_the_last_other_admin_is_allowed_but_not_oneself(app: Flask, signed_in: FlaskClient,
                                                                      agent: AgentAccount) -> None:
    ken = make_agent(app, "ken@example.jp", "Ken Ito")
    post_form(signed_in, f"{PAGE}/{ken.id}", PAGE, role="admin", cap="")
    assert post_form(signed_in, f"{PAGE}/{ken.id}/deactivate", PAGE).status_code == 303
    assert _stored(app, ken.email).active is False
    assert post_form(signed_in, f"{PAGE}/{agent.id}/deactivate", PAGE).status_code == 400
    with app.extensions["furiwake"].sessions() as session:  # and core refuses it whoever asks
        stored = session.get(Agent, agent.id)
        assert stored is not None
        try:
            agents.deactivate_agent(session, stored)
        except agents.LastAdminError as exc:
            assert "last active admin" in str(exc)
        else:
            raise AssertionError("the last active admin was deactivated")


def test_revoking_one_token(app: Flask, signed_in: FlaskClient) -> None:
    ken = make_agent(app, "ken@example.jp", "Ken Ito")
    with app.extensions["furiwake"].unit_of_work() as session:
        stored = session.get(Agent, ken.id)
        assert stored is not None
        second = agents.issue_token(session, stored)
    [first_row, second_row] = fetch(app, ApiToken, agent_id=ken.id)
    html = signed_in.get(PAGE).get_data(as_text=True)
    assert f'action="{PAGE}/{ken.id}/tokens/{first_row.id}/revoke"' in html
    assert ken.token not in html and second not in html

    assert post_form(signed_in, f"{PAGE}/{ken.id}/tokens/{first_row.id}/revoke", PAGE).status_code == 303
    assert (_api(app, ken.token), _api(app, second)) == (401, 200)
    assert "Token" in visible_text(signed_in.get(PAGE).get_data(as_text=True))
    # Another agent's id in the URL does not reach Ken's token.
    hana_id = _stored(app, "hana@example.jp").id
    assert post_form(signed_in, f"{PAGE}/{hana_id}/tokens/{second_row.id}/revoke", PAGE).status_code == 303
    assert _api(app, second) == 200
    assert post_form(signed_in, f"{PAGE}/999/deactivate", PAGE).status_code == 404


@both_backends
def test_the_top_bar_switch_sets_away_and_back_hands_out_what_waited(
        app: Flask, add_ticket: Callable[..., Ticket], agent: AgentAccount) -> None:
    ken = make_agent(app, "ken@example.jp", "Ken Ito")
    with app.extensions["furiwake"].unit_of_work() as session:
        stored = session.get(Agent, ken.id)
        assert stored is not None
        assignment.set_routes(session, stored, ["Payment"])
    browser = app.test_client()
    assert sign_in(browser, ken.email).status_code == 303
    html = browser.get("/agent").get_data(as_text=True)
    assert 'role="switch" aria-checked="true"' in html and 'action="/agent/availability"' in html

    away = post_form(browser, "/agent/availability", "/agent", available="false", next="/agent?queue=mine")
    assert away.status_code == 303 and away.headers["Location"] == "/agent?queue=mine"
    assert _stored(app, ken.email).available is False
    assert 'aria-checked="false"' in browser.get("/agent").get_data(as_text=True)

    waiting = add_ticket(route="Payment", scores=(0.05, 0.9, 0.05))
    back = post_form(browser, "/agent/availability", "/agent", available="true", next="//evil.example.com/")
    assert back.status_code == 303 and back.headers["Location"] == "/agent/"  # only a path on this site
    assert _stored(app, ken.email).available is True
    assert ticket_row(app, waiting.id).assigned_agent_id == ken.id
    assert "1 waiting ticket was assigned" in browser.get("/agent").get_data(as_text=True)

    assert browser.post("/agent/availability", data={"available": "false"}).status_code == 400  # no CSRF token
    assert post_form(browser, "/agent/availability", "/agent", available="maybe").status_code == 303
    assert _stored(app, ken.email).available is True
    assert app.test_client().post("/agent/availability").status_code in (302, 400)  # signed out
