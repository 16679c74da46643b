"""`furiwake deactivate-agent / activate-agent / revoke-tokens / list-agents` through the real console script, with
the agents' pages and API of an app on the same database: what the CLI does takes effect at the next request."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from core.agents import create_agent
from core.config import Settings
from tests.support.agents import PASSWORD, AgentAccount, make_agent, sign_in
from tests.support.backends import both_backends

FURIWAKE = str(Path(sys.executable).with_name("furiwake"))


@pytest.fixture
def app(make_settings: Callable[..., Settings], database_url: str, redis_url: str) -> Iterator[Flask]:
    app = create_app(make_settings(database_url=database_url, broker_url=redis_url))
    yield app
    app.extensions["furiwake"].engine.dispose()


@pytest.fixture
def furiwake(tmp_path: Path, database_url: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {"PATH": "/usr/bin:/bin", "FURIWAKE_HOME": str(tmp_path), "DATABASE_URL": database_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([FURIWAKE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    return run


@pytest.fixture
def hana(app: Flask) -> AgentAccount:
    return make_agent(app)


@pytest.fixture
def signed_in(app: Flask, hana: AgentAccount) -> FlaskClient:
    """Hana, signed in."""
    client = app.test_client()
    assert sign_in(client, hana.email).status_code == 303
    assert client.get("/agent").status_code == 200
    return client


def _api(app: Flask, token: str) -> int:
    return app.test_client().get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"}).status_code


def _another_admin(app: Flask) -> None:
    """Hana, the first agent, is the helpdesk's admin: with a second one she may be deactivated (the last active
    admin may not be: tests/cli/test_agent_roles.py)."""
    with app.extensions["furiwake"].unit_of_work() as session:
        create_agent(session, "yui@example.jp", PASSWORD, role="admin")


def _one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert fragment in result.stderr


@both_backends
def test_deactivate_agent_refuses_the_open_session_and_tokens_at_once(app: Flask, furiwake, hana: AgentAccount,
                                                                      signed_in: FlaskClient) -> None:
    assert _api(app, hana.token) == 200
    _another_admin(app)
    result = furiwake("deactivate-agent", "HANA@example.jp")
    assert result.returncode == 0, result.stderr
    assert "deactivated agent hana@example.jp" in result.stdout
    assert signed_in.get("/agent").status_code == 302
    assert _api(app, hana.token) == 401
    assert sign_in(app.test_client(), hana.email).status_code == 401
    again = furiwake("deactivate-agent", "hana@example.jp")
    assert again.returncode == 0 and "already deactivated" in again.stdout


def test_activate_agent_lets_them_sign_in_but_old_tokens_stay_revoked(app: Flask, furiwake, hana: AgentAccount,
                                                                      signed_in: FlaskClient) -> None:
    _another_admin(app)
    assert furiwake("deactivate-agent", hana.email).returncode == 0
    result = furiwake("activate-agent", hana.email)
    assert result.returncode == 0, result.stderr
    assert "activated agent hana@example.jp" in result.stdout
    assert signed_in.get("/agent").status_code == 302  # the session from before stays ended
    assert _api(app, hana.token) == 401
    client = app.test_client()
    assert sign_in(client, hana.email).status_code == 303 and client.get("/agent").status_code == 200
    token = furiwake("create-token", hana.email).stdout.strip()
    assert _api(app, token) == 200
    assert "already active" in furiwake("activate-agent", hana.email).stdout


def test_revoke_tokens_revokes_every_token_and_leaves_the_session(app: Flask, furiwake, hana: AgentAccount,
                                                                  signed_in: FlaskClient) -> None:
    second = furiwake("create-token", hana.email).stdout.strip()
    assert _api(app, second) == 200
    result = furiwake("revoke-tokens", hana.email)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "revoked 2 token(s) of hana@example.jp"
    assert _api(app, hana.token) == 401 and _api(app, second) == 401
    assert signed_in.get("/agent").status_code == 200
    assert furiwake("revoke-tokens", hana.email).stdout.strip() == "revoked 0 token(s) of hana@example.jp"


def test_list_agents_as_text_and_json(app: Flask, furiwake, hana: AgentAccount) -> None:
    make_agent(app, "ken@example.jp", name=None)
    assert furiwake("deactivate-agent", "ken@example.jp").returncode == 0
    text = furiwake("list-agents")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split() == ["hana@example.jp", "active", "admin", "1", "token(s)", "Hana", "Sato"]
    assert lines[1].split() == ["ken@example.jp", "deactivated", "agent", "0", "token(s)"]
    listed = json.loads(furiwake("list-agents", "--json").stdout)
    assert [(a["email"], a["name"], a["active"], a["live_tokens"]) for a in listed] == [
        ("hana@example.jp", "Hana Sato", True, 1),
        ("ken@example.jp", None, False, 0),
    ]


@pytest.mark.parametrize("command", ["deactivate-agent", "activate-agent", "revoke-tokens"])
def test_an_unknown_agent_is_one_line_and_exit_1(app: Flask, furiwake, command: str) -> None:
    _one_line_error(furiwake(command, "Nobody@example.jp"), "no agent with e-mail nobody@example.jp")


def test_list_agents_with_none_yet(app: Flask, furiwake) -> None:
    result = furiwake("list-agents")
    assert result.returncode == 0 and "furiwake create-agent" in result.stdout
    assert json.loads(furiwake("list-agents", "--json").stdout) == []
