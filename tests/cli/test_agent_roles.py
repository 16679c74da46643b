"""`furiwake create-agent --admin`, `furiwake agent role EMAIL admin|agent`, and the last active admin, whom neither
`agent role` nor `deactivate-agent` removes; an app on the same database sees a new role at the next request."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from api import create_app
from cli.main import main
from core.config import Settings
from core.db import make_engine, make_session_factory
from core.orm import Agent
from tests.support.agents import sign_in
from tests.support.backends import both_backends

PASSWORD = "a long enough password"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> str:
    monkeypatch.setenv("FURIWAKE_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


@pytest.fixture
def app(make_settings: Callable[..., Settings], cli_env: str, redis_url: str) -> Iterator[Flask]:
    app = create_app(make_settings(database_url=cli_env, broker_url=redis_url))
    yield app
    app.extensions["furiwake"].engine.dispose()


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(list(argv))


def _create(monkeypatch: pytest.MonkeyPatch, email: str, *flags: str) -> int:
    return _run(monkeypatch, "create-agent", email, "--password-stdin", *flags, stdin=PASSWORD + "\n")


def _roles(database_url: str) -> dict[str, tuple[str, bool]]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return {a.email: (a.role, a.active) for a in session.scalars(select(Agent))}
    finally:
        engine.dispose()


@both_backends
def test_the_first_agent_is_an_admin_later_ones_agents_unless_admin(cli_env: str, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert _create(monkeypatch, "hana@example.jp") == 0
    assert "created agent hana@example.jp (id 1, admin)" in capsys.readouterr().out
    assert _create(monkeypatch, "ken@example.jp") == 0
    assert "(id 2, agent)" in capsys.readouterr().out
    assert _create(monkeypatch, "yui@example.jp", "--admin") == 0
    assert _roles(cli_env) == {"hana@example.jp": ("admin", True), "ken@example.jp": ("agent", True),
                               "yui@example.jp": ("admin", True)}
    capsys.readouterr()
    assert _run(monkeypatch, "list-agents", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["email"], a["role"]) for a in listed] == [
        ("hana@example.jp", "admin"), ("ken@example.jp", "agent"), ("yui@example.jp", "admin")]
    assert _run(monkeypatch, "list-agents") == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["ken@example.jp", "active", "agent"]


def test_agent_role_promotes_and_demotes_but_never_the_last_admin(cli_env: str, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _create(monkeypatch, "hana@example.jp")
    _create(monkeypatch, "ken@example.jp")
    capsys.readouterr()

    assert _run(monkeypatch, "agent", "role", "hana@example.jp", "agent") == 1
    err = capsys.readouterr().err
    assert "last active admin" in err and "furiwake agent role" in err and len(err.strip().splitlines()) == 1
    assert _run(monkeypatch, "agent", "role", "KEN@example.jp", "admin") == 0
    assert capsys.readouterr().out.strip() == "ken@example.jp is now an admin"
    assert _run(monkeypatch, "agent", "role", "ken@example.jp", "admin") == 0
    assert "already an admin" in capsys.readouterr().out
    assert _run(monkeypatch, "agent", "role", "hana@example.jp", "agent") == 0
    assert _roles(cli_env) == {"hana@example.jp": ("agent", True), "ken@example.jp": ("admin", True)}

    capsys.readouterr()
    assert _run(monkeypatch, "agent", "role", "nobody@example.jp", "admin") == 1
    assert "no agent with e-mail nobody@example.jp" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: only admin or agent
        _run(monkeypatch, "agent", "role", "ken@example.jp", "owner")


def test_deactivate_agent_refuses_the_last_active_admin(cli_env: str, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _create(monkeypatch, "hana@example.jp")
    _create(monkeypatch, "ken@example.jp", "--admin")
    assert _run(monkeypatch, "deactivate-agent", "ken@example.jp") == 0  # another admin is left
    capsys.readouterr()
    assert _run(monkeypatch, "deactivate-agent", "hana@example.jp") == 1
    assert "hana@example.jp is the last active admin" in capsys.readouterr().err
    # A deactivated admin does not count: demoting Hana is refused too, until Ken is back.
    assert _run(monkeypatch, "agent", "role", "hana@example.jp", "agent") == 1
    assert _run(monkeypatch, "activate-agent", "ken@example.jp") == 0
    assert _run(monkeypatch, "deactivate-agent", "hana@example.jp") == 0
    assert _roles(cli_env) == {"hana@example.jp": ("admin", False), "ken@example.jp": ("admin", True)}


@both_backends
def test_a_role_set_on_the_server_takes_effect_at_the_next_request(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    _create(monkeypatch, "hana@example.jp")
    _create(monkeypatch, "ken@example.jp")
    browser = app.test_client()
    assert sign_in(browser, "ken@example.jp", PASSWORD).status_code == 303
    assert browser.get("/agent/agents").status_code == 403
    assert _run(monkeypatch, "agent", "role", "ken@example.jp", "admin") == 0
    assert browser.get("/agent/agents").status_code == 200  # same session, no new sign-in
    assert 'href="/agent/agents"' in browser.get("/agent").get_data(as_text=True)
