"""README's queue example works as written: it names a real CLI command for the token and sends the token."""

from __future__ import annotations

import re
import shlex

from flask.testing import FlaskClient

from cli.main import build_parser
from tests.support.agents import AgentAccount
from tests.support.paths import ROOT


def _example() -> tuple[list[str], list[str]]:
    """(the command that makes $TOKEN, the curl that reads the queue), as README shows them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [curl] = [line for line in readme.splitlines() if line.startswith("curl") and "/api/v1/tickets?" in line]
    made = re.search(r"^TOKEN=\$\((furiwake [^)]+)\)$", readme, re.MULTILINE)
    assert made, "README does not show where $TOKEN comes from"
    return shlex.split(made.group(1)), shlex.split(curl)


def test_the_token_comes_from_a_real_command() -> None:
    command, _curl = _example()
    assert command[0] == "furiwake"
    args = build_parser().parse_args(command[1:])  # exits (fails the test) on an unknown command
    assert args.command == "create-token"


def test_the_queue_example_answers_200_with_the_token(client: FlaskClient, agent: AgentAccount, add_ticket) -> None:
    ticket = add_ticket(route="Payment", scores=(0.05, 0.9, 0.05))
    _command, curl = _example()
    headers: dict[str, str] = {}
    for flag, value in zip(curl, curl[1:], strict=False):
        if flag == "-H":
            name, _, text = value.partition(":")
            headers[name.strip()] = text.strip().replace("$TOKEN", agent.token)  # what the shell substitutes
    url = next(arg for arg in curl if arg.startswith("http"))
    response = client.get(url.split("8000", 1)[1], headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [item["id"] for item in response.get_json()["items"]] == [str(ticket.id)]
