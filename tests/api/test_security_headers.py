"""Security headers on every page and API response, the session cookie's flags, templates a strict CSP does not
break, and the start-up checks: a real SECRET_KEY outside the embedded mode, a warning for plain HTTP on a network."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from api import create_app
from api.security import plain_http_warning
from core.config import DEV_SECRET_KEY, ConfigError, Settings
from tests.support.agents import make_agent, sign_in

TEMPLATES = Path(__file__).resolve().parents[2] / "api" / "templates"


def _assert_protected(response) -> None:
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


# A fixed id: pytest-xdist's workers must collect the same parameters.
UNKNOWN_TICKET = uuid.UUID("00000000-0000-4000-8000-000000000000")


@pytest.mark.parametrize("url", ["/", "/?lang=en", "/healthz", "/api/v1/openapi.json", "/agent/login",
                                 f"/tickets/{UNKNOWN_TICKET}", f"/api/v1/tickets/{UNKNOWN_TICKET}", "/no-such-page"])
def test_every_response_carries_the_security_headers(client, url: str) -> None:
    _assert_protected(client.get(url))


def test_agents_pages_keep_their_own_stricter_headers(client) -> None:
    response = client.get("/agent/login")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers.getlist("Content-Security-Policy") == [response.headers["Content-Security-Policy"]]


def test_session_cookie_is_http_only_and_same_site_lax(app, client) -> None:
    agent = make_agent(app)
    response = sign_in(client, agent.email)
    assert response.status_code == 303
    [cookie] = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_session_cookie_is_secure_over_https_behind_a_trusted_proxy(make_settings, database_url: str,
                                                                   redis_url: str) -> None:
    settings = make_settings(database_url=database_url, broker_url=redis_url, trusted_proxies=1)
    app = create_app(replace(settings, testing=False))  # tests otherwise never set the Secure flag
    agent = make_agent(app)
    client = app.test_client()
    login = client.get("/agent/login", headers={"X-Forwarded-Proto": "https"}, base_url="http://127.0.0.1")
    found = re.search(r'name="csrf_token" value="([^"]+)"', login.get_data(as_text=True))
    assert found is not None
    token = found.group(1)
    response = client.post("/agent/login", data={"email": agent.email, "password": agent.password, "csrf_token": token},
                           headers={"X-Forwarded-Proto": "https", "Referer": "https://127.0.0.1/agent/login"},
                           base_url="http://127.0.0.1")
    assert response.status_code == 303, response.get_data(as_text=True)
    [cookie] = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")]
    assert "Secure" in cookie and "HttpOnly" in cookie


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: p.name)
def test_templates_have_no_inline_script_or_style(template: Path) -> None:
    """What the Content-Security-Policy would block: inline <script>, on* handlers, style attributes and blocks."""
    html = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert not re.search(r"\sstyle\s*=|<style", html)
    assert "javascript:" not in html


def test_development_secret_key_is_refused_outside_the_embedded_mode(make_settings, redis_url: str) -> None:
    with pytest.raises(ConfigError, match="^SECRET_KEY: "):
        create_app(make_settings(broker_url=redis_url, secret_key=DEV_SECRET_KEY))
    with pytest.raises(ConfigError, match="^SECRET_KEY: "):
        create_app(Settings.from_env({"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/furiwake"}))
    # The embedded mode (SQLite + filesystem broker, one machine) may run on the default.
    embedded = make_settings(broker_url="filesystem://", secret_key=DEV_SECRET_KEY)
    assert embedded.embedded
    assert create_app(embedded).config["SECRET_KEY"] == DEV_SECRET_KEY


def test_plain_http_on_a_network_address_is_announced_at_start_up(make_settings, redis_url: str, caplog) -> None:
    assert plain_http_warning(make_settings(host="127.0.0.1")) is None
    assert plain_http_warning(make_settings(host="localhost")) is None
    assert plain_http_warning(make_settings(host="0.0.0.0", trusted_proxies=1)) is None
    line = plain_http_warning(make_settings(host="0.0.0.0"))
    assert line is not None and "TLS terminator" in line and "TRUSTED_PROXIES" in line and "\n" not in line

    with caplog.at_level(logging.WARNING, logger="api.security"):
        create_app(replace(make_settings(host="0.0.0.0", broker_url=redis_url), testing=False))
    assert [r.getMessage() for r in caplog.records if r.name == "api.security"] == [line]


def test_trusted_proxies_is_checked(tmp_path: Path) -> None:
    assert Settings.from_env({"TRUSTED_PROXIES": "2"}).trusted_proxies == 2
    with pytest.raises(ConfigError, match="^TRUSTED_PROXIES: "):
        Settings.from_env({"TRUSTED_PROXIES": "-1"})
