"""`furiwake webhook add | list | remove` on a real database, through cli.main as the console script runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli.main import main


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str) -> str:
    monkeypatch.setenv("FURIWAKE_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    return sqlite_url


def test_add_list_and_remove(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhook", "add", "https://chat.example.com/hook", "--event", "ticket.routed",
                 "--description", "team chat"]) == 0
    out = capsys.readouterr().out
    assert "webhook 1: https://chat.example.com/hook (ticket.routed)" in out
    assert re.search(r"signing secret \(shown once\): [0-9a-f]{64}", out)
    assert main(["webhook", "add", "https://desk.example.com/hook", "--secret", "a-secret-of-our-own"]) == 0
    out = capsys.readouterr().out
    assert "ticket.created, ticket.routed, ticket.rerouted, ticket.assigned, ticket.resolved" in out  # all events
    assert "signing secret" not in out  # the caller gave it

    assert main(["webhook", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(w["id"], w["url"], w["events"], w["description"]) for w in listed] == [
        (1, "https://chat.example.com/hook", ["ticket.routed"], "team chat"),
        (2, "https://desk.example.com/hook", ["ticket.created", "ticket.routed", "ticket.rerouted",
                                              "ticket.assigned", "ticket.resolved"], None)]
    assert all("secret" not in w for w in listed)

    assert main(["webhook", "remove", "1"]) == 0
    assert "removed webhook 1" in capsys.readouterr().out
    assert main(["webhook", "remove", "1"]) == 1
    assert capsys.readouterr().err.strip() == "furiwake webhook: error: no webhook 1 (`furiwake webhook list`)"
    assert main(["webhook", "list"]) == 0
    assert "desk.example.com" in capsys.readouterr().out


def test_bad_input_is_one_line_and_a_non_zero_exit(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhook", "add", "not-a-url"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "http:// or https://" in err
    assert main(["webhook", "add", "https://x.example.com", "--secret", "short"]) == 1
    assert "at least 16 characters" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse's own refusal of an unknown event
        main(["webhook", "add", "https://x.example.com", "--event", "ticket.deleted"])
    assert main(["webhook", "list"]) == 0
    assert "no webhooks yet" in capsys.readouterr().out
