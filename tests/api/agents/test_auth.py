"""Signing in and out of the agents' pages, CSRF on every form, the session cookie's flags."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from api import create_app
from core import agents
from core.orm import Agent
from tests.support.agents import PASSWORD, AgentAccount, csrf_token, make_agent, post_form, sign_in
from tests.support.backends import both_backends


def test_queue_sends_a_stranger_to_the_sign_in_page_and_back(client: FlaskClient, agent: AgentAccount) -> None:
    response = client.get("/agent?queue=payment")
    assert response.status_code == 302
    assert response.headers["Location"] == "/agent/login?next=/agent?queue%3Dpayment"
    signed = sign_in(client, agent.email, next_url="/agent?queue=payment")
    assert signed.status_code == 303 and signed.headers["Location"] == "/agent?queue=payment"


@both_backends
def test_sign_in_shows_the_queue_then_sign_out_ends_the_session(client: FlaskClient, agent: AgentAccount) -> None:
    assert sign_in(client, "  HANA@example.jp ").status_code == 303  # e-mail case and spaces do not matter
    page = client.get("/agent").get_data(as_text=True)
    assert "Hana Sato" in page and "Sign out" in page and 'id="queue-region"' in page
    response = post_form(client, "/agent/logout", "/agent")
    assert response.status_code == 303 and response.headers["Location"] == "/agent/login"
    assert client.get("/agent").status_code == 302


@both_backends
def test_sign_out_refuses_a_copied_session_cookie_at_once(app: Flask, signed_in: FlaskClient) -> None:
    """Clearing the browser's cookie is not enough: a copy saved before sign-out must stop opening /agent."""
    copied = signed_in.get_cookie("session")
    assert copied is not None
    thief = app.test_client()
    thief.set_cookie("session", copied.value)
    assert thief.get("/agent").status_code == 200  # the copy works while the agent is signed in
    assert post_form(signed_in, "/agent/logout", "/agent").status_code == 303
    refused = thief.get("/agent")
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/agent/login")


def test_sign_out_ends_the_agents_other_browsers_too(app: Flask, signed_in: FlaskClient,
                                                     agent: AgentAccount) -> None:
    other = app.test_client()
    assert sign_in(other, agent.email).status_code == 303
    post_form(signed_in, "/agent/logout", "/agent")
    assert other.get("/agent").status_code == 302
    assert sign_in(other, agent.email).status_code == 303 and other.get("/agent").status_code == 200


@both_backends
def test_wrong_password_or_unknown_address_is_refused_alike(client: FlaskClient, agent: AgentAccount) -> None:
    wrong = sign_in(client, agent.email, "not the password at all")
    unknown = sign_in(client, "nobody@example.jp")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong e-mail address or password." in response.get_data(as_text=True)
    assert client.get("/agent").status_code == 302


def test_deactivated_agent_cannot_sign_in_and_is_signed_out(app: Flask, signed_in: FlaskClient,
                                                             agent: AgentAccount) -> None:
    with app.extensions["furiwake"].sessions.begin() as session:
        session.execute(update(Agent).where(Agent.id == agent.id).values(active=False))
    assert signed_in.get("/agent").status_code == 302
    assert sign_in(signed_in, agent.email).status_code == 401


def test_a_new_password_ends_sessions_opened_with_the_old_one(app: Flask, signed_in: FlaskClient,
                                                              agent: AgentAccount) -> None:
    with app.extensions["furiwake"].sessions.begin() as session:
        session.execute(update(Agent).where(Agent.id == agent.id)
                        .values(password_hash=agents.hash_password("a brand new password")))
    assert signed_in.get("/agent").status_code == 302


def test_passwords_are_stored_as_argon2id_hashes(app: Flask, agent: AgentAccount) -> None:
    with app.extensions["furiwake"].sessions() as session:
        stored = session.get(Agent, agent.id)
        assert stored is not None
        assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash


def test_next_never_leaves_the_site(client: FlaskClient, agent: AgentAccount) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        response = sign_in(client, agent.email, next_url=target)
        assert response.headers["Location"] == "/agent/", target
        post_form(client, "/agent/logout", "/agent")


def test_every_agent_form_without_its_csrf_token_is_refused(app: Flask, signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket()
    for url, data in [
        ("/agent/logout", {}),
        (f"/agent/tickets/{ticket.id}/route", {"route": "Payment"}),
        (f"/agent/tickets/{ticket.id}/resolve", {}),
        (f"/agent/tickets/{ticket.id}/assign", {}),
    ]:
        for token in (None, "forged"):
            response = signed_in.post(url, data=data if token is None else {**data, "csrf_token": token})
            assert response.status_code == 400, url
            assert "security token" in response.get_data(as_text=True)
    assert signed_in.get("/agent").status_code == 200  # still signed in: the logout was refused too


def test_sign_in_form_needs_its_csrf_token(client: FlaskClient, agent: AgentAccount) -> None:
    response = client.post("/agent/login", data={"email": agent.email, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/agent").status_code == 302


def test_a_token_from_another_session_is_refused(app: Flask, signed_in: FlaskClient, add_ticket) -> None:
    other = app.test_client()
    make_agent(app, "ken@example.jp", "Ken")
    token_of_other = csrf_token(other, "/agent/login")
    ticket = add_ticket()
    response = signed_in.post(f"/agent/tickets/{ticket.id}/resolve", data={"csrf_token": token_of_other})
    assert response.status_code == 400


@pytest.fixture
def deployed_app(make_settings, database_url: str, redis_url: str) -> Iterator[Flask]:
    """The app as gunicorn runs it (TESTING off), on the test database."""
    app = create_app(replace(make_settings(database_url=database_url, broker_url=redis_url), testing=False))
    yield app
    app.extensions["furiwake"].engine.dispose()


def _cookie_after_sign_in(app: Flask, base_url: str) -> str:
    client = app.test_client()
    referer = {"Referer": f"{base_url}/agent/login"}  # flask-wtf checks it on HTTPS
    token = client.get("/agent/login", base_url=base_url).get_data(as_text=True)
    token = token.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/agent/login", base_url=base_url, headers=referer,
                           data={"email": "ken@example.jp", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Set-Cookie"]


def test_session_cookie_is_httponly_lax_and_secure_except_plain_http_to_this_machine(deployed_app: Flask) -> None:
    make_agent(deployed_app, "ken@example.jp")
    for local in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        cookie = _cookie_after_sign_in(deployed_app, local)
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie, local
    cookie = _cookie_after_sign_in(deployed_app, "https://support.example.jp")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_sign_in_page_warns_when_reached_over_plain_http_from_the_network(deployed_app: Flask) -> None:
    client = deployed_app.test_client()
    response = client.get("/agent/login", base_url="http://10.0.0.5:8000")
    assert "Signing in needs HTTPS" in response.get_data(as_text=True)
    assert "Secure" in response.headers["Set-Cookie"]
    local = client.get("/agent/login", base_url="http://localhost:8000").get_data(as_text=True)
    assert "Signing in needs HTTPS" not in local


def test_queue_refresh_answers_401_to_a_script_once_signed_out(client: FlaskClient) -> None:
    response = client.get("/agent/queue?queue=all", headers={"X-Requested-With": "fetch"})
    assert response.status_code == 401
