"""The Agents page: deactivating an agent locks them out at once (open session and tokens), activating lets them
sign in again, nobody deactivates themself, and every button is a CSRF-protected POST."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from core.orm import Agent, ApiToken
from tests.support.agents import AgentAccount, csrf_token, fetch, make_agent, post_form, sign_in, visible_text
from tests.support.backends import both_backends


def _colleague(app: Flask) -> tuple[AgentAccount, FlaskClient]:
    """A second agent, signed in in their own browser, with a token."""
    ken = make_agent(app, "ken@example.jp", "Ken Ito")
    browser = app.test_client()
    assert sign_in(browser, ken.email).status_code == 303
    return ken, browser


def test_the_page_lists_every_agent_with_a_button_but_none_for_me(app: Flask, signed_in: FlaskClient,
                                                                  agent: AgentAccount) -> None:
    ken, _ = _colleague(app)
    page = signed_in.get("/agent/agents")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    text = visible_text(html)
    assert "Hana Sato" in text and "Ken Ito" in text and "ken@example.jp" in text
    assert f'action="/agent/agents/{ken.id}/deactivate"' in html
    assert f'action="/agent/agents/{agent.id}/deactivate"' not in html
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert 'href="/agent/agents"' in html  # in the top bar


@both_backends
def test_deactivating_refuses_their_open_session_and_tokens_at_once(app: Flask, signed_in: FlaskClient) -> None:
    ken, browser = _colleague(app)
    bearer = {"Authorization": f"Bearer {ken.token}"}
    assert browser.get("/agent").status_code == 200
    assert app.test_client().get("/api/v1/tickets?queue=all", headers=bearer).status_code == 200

    response = post_form(signed_in, f"/agent/agents/{ken.id}/deactivate", "/agent/agents")
    assert response.status_code == 303 and response.headers["Location"] == "/agent/agents"
    assert "deactivated" in visible_text(signed_in.get("/agent/agents").get_data(as_text=True))

    assert browser.get("/agent").status_code == 302
    assert app.test_client().get("/api/v1/tickets?queue=all", headers=bearer).status_code == 401
    assert sign_in(browser, ken.email).status_code == 401
    [stored] = fetch(app, Agent, id=ken.id)
    assert stored.active is False
    assert all(token.revoked_at is not None for token in fetch(app, ApiToken, agent_id=ken.id))


def test_activating_lets_them_sign_in_again_but_keeps_old_sessions_and_tokens_dead(
        app: Flask, signed_in: FlaskClient) -> None:
    ken, browser = _colleague(app)
    post_form(signed_in, f"/agent/agents/{ken.id}/deactivate", "/agent/agents")
    response = post_form(signed_in, f"/agent/agents/{ken.id}/activate", "/agent/agents")
    assert response.status_code == 303
    assert browser.get("/agent").status_code == 302  # the session from before stays ended
    bearer = {"Authorization": f"Bearer {ken.token}"}
    assert app.test_client().get("/api/v1/tickets?queue=all", headers=bearer).status_code == 401
    assert sign_in(browser, ken.email).status_code == 303 and browser.get("/agent").status_code == 200


def test_an_agent_cannot_deactivate_themself(app: Flask, signed_in: FlaskClient, agent: AgentAccount) -> None:
    response = post_form(signed_in, f"/agent/agents/{agent.id}/deactivate", "/agent/agents")
    assert response.status_code == 400
    assert "furiwake deactivate-agent" in response.get_data(as_text=True)
    [stored] = fetch(app, Agent, id=agent.id)
    assert stored.active is True
    assert signed_in.get("/agent").status_code == 200


def test_buttons_need_the_csrf_token_and_a_signed_in_agent(app: Flask, client: FlaskClient,
                                                            agent: AgentAccount) -> None:
    ken = make_agent(app, "ken@example.jp", "Ken Ito")
    stranger = client.get("/agent/agents")
    assert stranger.status_code == 302 and stranger.headers["Location"].startswith("/agent/login")
    token = csrf_token(client, "/agent/login")
    assert client.post(f"/agent/agents/{ken.id}/deactivate", data={"csrf_token": token}).status_code == 302
    assert sign_in(client, agent.email).status_code == 303
    assert client.post(f"/agent/agents/{ken.id}/deactivate").status_code == 400
    [stored] = fetch(app, Agent, id=ken.id)
    assert stored.active is True


def test_an_unknown_agent_is_404(signed_in: FlaskClient) -> None:
    assert post_form(signed_in, "/agent/agents/999999/deactivate", "/agent/agents").status_code == 404
