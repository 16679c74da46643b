"""Roles: an agent gets 403 on the admins' pages, their buttons' POSTs and the admin-only API, and sees neither the
links nor the buttons; an admin gets through. The first agent of a helpdesk is its admin (core.agents.create_agent),
so `hana` (the conftest's agent) is the admin here and Ken, made second, an agent."""

from __future__ import annotations

import threading

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from core import agents
from core.artifacts import current_version, set_current
from core.messaging import TRAINING_QUEUE
from core.orm import Agent, ApiToken, WebhookSubscription
from tests.support.agents import AgentAccount, csrf_token, fetch, make_agent, post_form, sign_in
from tests.support.backends import POSTGRES
from tests.support.registry import fake_version

ADMIN_PAGES = ("/agent/agents", "/agent/webhooks")


@pytest.fixture
def ken(app: Flask, agent: AgentAccount) -> AgentAccount:
    """An agent (not an admin): made after Hana, the first one."""
    return make_agent(app, "ken@example.jp", "Ken Ito")


@pytest.fixture
def ken_browser(app: Flask, ken: AgentAccount) -> FlaskClient:
    browser = app.test_client()
    assert sign_in(browser, ken.email).status_code == 303
    return browser


def _set_role(app: Flask, agent_id: int, role: str) -> None:
    with app.extensions["furiwake"].unit_of_work() as session:
        stored = session.get(Agent, agent_id)
        assert stored is not None
        agents.set_role(session, stored, role)


def test_roles_as_made(app: Flask, agent: AgentAccount, ken: AgentAccount) -> None:
    assert [(a.email, a.role) for a in fetch(app, Agent)] == [(agent.email, "admin"), (ken.email, "agent")]


def test_an_agent_gets_403_on_the_admins_pages_and_sees_no_link_to_them(ken_browser: FlaskClient,
                                                                        signed_in: FlaskClient) -> None:
    for url in ADMIN_PAGES:
        refused = ken_browser.get(url)
        assert refused.status_code == 403, url
        assert "Only an admin can do this" in refused.get_data(as_text=True)
        assert refused.headers["Cache-Control"] == "no-store"
    queue = ken_browser.get("/agent").get_data(as_text=True)
    for url in ADMIN_PAGES:
        assert f'href="{url}"' not in queue
    assert 'href="/agent/models"' in queue  # the Models page is for every agent, without its buttons

    admin_queue = signed_in.get("/agent").get_data(as_text=True)
    for url in ADMIN_PAGES:
        assert f'href="{url}"' in admin_queue
        assert signed_in.get(url).status_code == 200


def test_an_agent_cannot_manage_agents_by_posting(app: Flask, ken_browser: FlaskClient, agent: AgentAccount,
                                                  ken: AgentAccount) -> None:
    [token] = fetch(app, ApiToken, agent_id=agent.id)
    posts = {
        "/agent/agents": {"email": "mallory@example.jp", "password": "a long enough password", "role": "admin"},
        f"/agent/agents/{ken.id}": {"role": "admin", "routes": "Payment"},
        f"/agent/agents/{agent.id}/deactivate": {},
        f"/agent/agents/{agent.id}/activate": {},
        f"/agent/agents/{agent.id}/tokens/{token.id}/revoke": {},
    }
    for url, data in posts.items():
        assert post_form(ken_browser, url, "/agent", **data).status_code == 403, url
    stored = {a.email: a for a in fetch(app, Agent)}
    assert set(stored) == {agent.email, ken.email}
    assert stored[ken.email].role == "agent" and stored[agent.email].active
    assert fetch(app, ApiToken, id=token.id)[0].revoked_at is None


def test_an_agent_cannot_add_or_remove_webhooks(app: Flask, ken_browser: FlaskClient, signed_in: FlaskClient) -> None:
    data = {"url": "https://hooks.example.com/furiwake", "events": "ticket.routed"}
    as_ken = {**data, "csrf_token": csrf_token(ken_browser, "/agent")}
    assert ken_browser.post("/agent/webhooks", data=as_ken).status_code == 403
    assert post_form(ken_browser, "/agent/webhooks/1/remove", "/agent").status_code == 403
    assert fetch(app, WebhookSubscription) == []
    as_hana = {**data, "csrf_token": csrf_token(signed_in, "/agent/webhooks")}
    assert signed_in.post("/agent/webhooks", data=as_hana).status_code == 201
    [added] = fetch(app, WebhookSubscription)
    assert post_form(ken_browser, f"/agent/webhooks/{added.id}/remove", "/agent").status_code == 403
    assert fetch(app, WebhookSubscription)[0].id == added.id


def test_an_agent_sees_the_models_page_without_buttons_and_cannot_retrain_or_roll_back(
        app: Flask, ken_browser: FlaskClient, signed_in: FlaskClient, broker: redis.Redis) -> None:
    model_dir = app.extensions["furiwake"].settings.model_dir
    set_current(model_dir, fake_version(model_dir, "v0"))
    fake_version(model_dir, "v1")
    page = ken_browser.get("/agent/models")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "v0" in html  # the registry was read, the versions are shown
    for button in ("/agent/models/retrain", "/agent/models/rollback", "Make champion", "Retrain now"):
        assert button not in html, button

    assert post_form(ken_browser, "/agent/models/retrain", "/agent").status_code == 403
    assert broker.llen(TRAINING_QUEUE) == 0
    assert post_form(ken_browser, "/agent/models/rollback", "/agent", to="v0").status_code == 403
    assert current_version(model_dir) == "v0"

    admin_html = signed_in.get("/agent/models").get_data(as_text=True)
    assert "/agent/models/retrain" in admin_html and "Retrain now" in admin_html
    assert post_form(signed_in, "/agent/models/retrain", "/agent/models").status_code == 303
    assert broker.llen(TRAINING_QUEUE) == 1


def test_a_demoted_admin_is_refused_at_their_next_request(app: Flask, signed_in: FlaskClient, agent: AgentAccount,
                                                          ken: AgentAccount) -> None:
    assert signed_in.get("/agent/agents").status_code == 200
    _set_role(app, ken.id, "admin")
    _set_role(app, agent.id, "agent")
    assert signed_in.get("/agent/agents").status_code == 403
    assert signed_in.get("/agent").status_code == 200  # still signed in, still works tickets
    _set_role(app, agent.id, "admin")
    assert signed_in.get("/agent/agents").status_code == 200


def test_the_admin_only_api_refuses_an_agents_token_with_a_problem(client: FlaskClient, agent: AgentAccount,
                                                                   ken: AgentAccount) -> None:
    refused = client.get("/api/v1/agents", headers={"Authorization": f"Bearer {ken.token}"})
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert refused.get_json()["status"] == 403 and "admin" in refused.get_json()["detail"]
    assert client.get("/api/v1/agents").status_code == 401

    listed = client.get("/api/v1/agents", headers={"Authorization": f"Bearer {agent.token}"})
    assert listed.status_code == 200, listed.get_data(as_text=True)
    assert [(a["email"], a["role"], a["active"], a["available"], a["max_open"]) for a in listed.get_json()] == [
        ("hana@example.jp", "admin", True, True, 10), ("ken@example.jp", "agent", True, True, 10)]

    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/agents"]["get"]
    assert {"401", "403"} <= set(operation["responses"]) and operation["security"] == [{"bearerAuth": []}]


def test_the_own_availability_api_stays_open_to_agents(client: FlaskClient, ken: AgentAccount) -> None:
    answer = client.get("/api/v1/agents/me/availability", headers={"Authorization": f"Bearer {ken.token}"})
    assert answer.status_code == 200 and answer.get_json()["email"] == ken.email


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin(app: Flask, agent: AgentAccount,
                                                                ken: AgentAccount) -> None:
    """Check-then-act across two transactions: the second waits for the first's lock on the admins' rows, then
    counts what it committed, so it is refused instead of leaving the helpdesk without an admin."""
    _set_role(app, ken.id, "admin")
    sessions = app.extensions["furiwake"].sessions
    first = sessions()
    first.begin()
    hana = first.get(Agent, agent.id)
    assert hana is not None and agents.set_role(first, hana, "agent")
    first.flush()
    outcome: list[str] = []

    def demote_ken() -> None:
        with sessions() as session, session.begin():
            stored = session.get(Agent, ken.id)
            assert stored is not None
            try:
                agents.set_role(session, stored, "agent")
                outcome.append("demoted")
            except agents.LastAdminError:
                outcome.append("refused")

    second = threading.Thread(target=demote_ken)
    second.start()
    second.join(1.0)
    assert second.is_alive() and outcome == []  # waiting for the first transaction's lock
    first.commit()
    first.close()
    second.join(10)
    assert outcome == ["refused"]
    assert {a.email: a.role for a in fetch(app, Agent)} == {agent.email: "agent", ken.email: "admin"}
