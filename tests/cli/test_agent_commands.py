"""`furiwake create-agent` and `furiwake create-token` on a real database."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from cli.main import main
from core.agents import verify_token
from core.db import make_engine, make_session_factory
from core.orm import Agent
from tests.support.backends import both_backends

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cli_env(monkeypatch, tmp_path: Path, database_url: str) -> str:
    monkeypatch.setenv("FURIWAKE_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


def _run(monkeypatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(argv)


def _agents(database_url: str) -> list[Agent]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(Agent)))
    finally:
        engine.dispose()


@both_backends
def test_create_agent_then_a_token_that_works(cli_env: str, monkeypatch, capsys) -> None:
    assert _run(monkeypatch, ["create-agent", "Hana@Example.jp", "--name", "Hana Sato", "--password-stdin"],
                "a long enough password\n") == 0
    assert "created agent hana@example.jp" in capsys.readouterr().out
    [agent] = _agents(cli_env)
    assert (agent.email, agent.name, agent.active) == ("hana@example.jp", "Hana Sato", True)
    assert agent.password_hash.startswith("$argon2id$")

    assert _run(monkeypatch, ["create-token", "hana@example.jp"]) == 0
    out = capsys.readouterr().out
    token = out.strip()
    assert out == token + "\n" and token.startswith("fwk_")  # the token alone: `TOKEN=$(furiwake create-token …)`
    engine = make_engine(cli_env)
    with make_session_factory(engine)() as session:
        found = verify_token(session, token)
        assert found is not None and found.email == "hana@example.jp"
    engine.dispose()


def test_create_agent_asks_for_the_password_twice(cli_env: str, monkeypatch, capsys) -> None:
    answers = iter(["a long enough password", "a long enough password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("cli.agent_commands.stdin_is_terminal", lambda: True)  # as at a terminal
    assert main(["create-agent", "ken@example.jp"]) == 0
    answers = iter(["another long password", "a different password"])
    assert main(["create-agent", "yui@example.jp"]) == 1
    assert "the two passwords differ" in capsys.readouterr().err
    assert [a.email for a in _agents(cli_env)] == ["ken@example.jp"]


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["create-agent", "hana@example.jp", "--password-stdin"], "short\n", "at least 12 characters"),
        (["create-agent", "not-an-address", "--password-stdin"], "a long enough password\n", "not an e-mail"),
        (["create-token", "nobody@example.jp"], "", "no active agent with e-mail nobody@example.jp"),
    ],
)
def test_mistakes_are_one_line_and_exit_1(cli_env: str, monkeypatch, capsys, argv, stdin, message) -> None:
    assert _run(monkeypatch, argv, stdin) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_a_second_agent_with_the_same_address_is_refused(cli_env: str, monkeypatch, capsys) -> None:
    argv = ["create-agent", "hana@example.jp", "--password-stdin"]
    assert _run(monkeypatch, argv, "a long enough password\n") == 0
    assert _run(monkeypatch, [argv[0], "HANA@example.jp", argv[2]], "a long enough password\n") == 1
    assert "already exists" in capsys.readouterr().err


def test_an_unmigrated_database_is_one_line(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    assert _run(monkeypatch, ["create-token", "hana@example.jp"]) == 1
    assert "furiwake migrate" in capsys.readouterr().err


def test_the_console_script_reads_the_password_from_a_pipe(tmp_path: Path, sqlite_url: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "FURIWAKE_HOME": str(tmp_path), "DATABASE_URL": sqlite_url}
    furiwake = str(Path(sys.executable).with_name("furiwake"))
    created = subprocess.run([furiwake, "create-agent", "mio@example.jp", "--password-stdin"], cwd=ROOT, env=env,
                             input="a long enough password\n", capture_output=True, text=True, timeout=60, check=False)
    assert created.returncode == 0, created.stderr
    token = subprocess.run([furiwake, "create-token", "mio@example.jp"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert token.returncode == 0, token.stderr
    assert token.stdout.startswith("fwk_") and len(token.stdout.split()) == 1
