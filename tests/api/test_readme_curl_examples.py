"""Every curl example in README.md works as written against the real app: the same method, headers, body and URL,
with $TOKEN made by the command README shows right before it (`furiwake create-token EMAIL`, run here for real) and
<id> the id the example's own POST answered.

Real database and broker (tests/api/conftest.py); the CLI runs in-process on the same database."""

from __future__ import annotations

import io
import re
import shlex
import sys
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cli.main import main as furiwake
from core.orm import Ticket
from tests.support.agents import make_agent
from tests.support.paths import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BASE = "http://127.0.0.1:8000"


@dataclass
class Curl:
    line: str
    method: str = "GET"
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    data: str | None = None
    query: list[tuple[str, str]] = field(default_factory=list)


def _shell_blocks() -> list[list[str]]:
    """The commands of each ```sh block, continuation lines joined, comment lines dropped."""
    blocks = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        blocks.append([line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")])
    return blocks


def _parse(line: str) -> Curl:
    words = shlex.split(line, comments=True)
    assert words[0] == "curl", line
    curl, get_with_data, rest = Curl(line), False, iter(words[1:])
    for word in rest:
        if word in ("-s", "-sS", "-i"):
            continue
        if word == "-X":
            curl.method = next(rest)
        elif word == "-H":
            name, _, value = next(rest).partition(":")
            curl.headers[name.strip()] = value.strip()
        elif word in ("-d", "--data"):
            curl.data = next(rest)
        elif word == "-G":
            get_with_data = True
        elif word == "--data-urlencode":
            assert get_with_data, f"{line}: --data-urlencode without -G would POST"
            name, _, value = next(rest).partition("=")
            curl.query.append((name, value))
        elif word.startswith("http"):
            curl.url = word
        else:
            pytest.fail(f"README's curl uses an option this test does not know: {word} ({line})")
    if curl.data is not None and curl.method == "GET" and not get_with_data:
        curl.method = "POST"  # what curl does with -d
    assert curl.url.startswith(BASE), line
    return curl


def _token_command(block: list[str]) -> list[str] | None:
    for line in block:
        match = re.fullmatch(r"TOKEN=\$\((furiwake [^)]+)\)", line)
        if match:
            return shlex.split(match.group(1))
    return None


def _route_as_the_worker_would(app: Flask, ids: list[str], route: str) -> None:
    with app.extensions["furiwake"].unit_of_work() as session:
        for ticket_id in ids:
            ticket = session.get(Ticket, uuid.UUID(ticket_id))
            assert ticket is not None
            ticket.status, ticket.route = "routed", route


def test_readme_has_the_examples_this_test_runs() -> None:
    curls = [line for block in _shell_blocks() for line in block if line.startswith("curl")]
    assert len(curls) >= 5, curls
    methods_and_paths = {(_parse(line).method, urllib.parse.urlsplit(_parse(line).url).path) for line in curls}
    assert ("POST", "/api/v1/tickets") in methods_and_paths and ("GET", "/api/v1/tickets") in methods_and_paths


def test_the_token_is_made_right_before_the_first_curl_that_sends_it() -> None:
    for block in _shell_blocks():
        for index, line in enumerate(block):
            if "$TOKEN" in line and line.startswith("curl"):
                made = [i for i, earlier in enumerate(block[:index]) if earlier.startswith("TOKEN=")]
                assert made, f"$TOKEN is used before README says how to get it: {line}"
                assert _token_command(block) == ["furiwake", "create-token", "hana@example.jp"]


def test_every_curl_example_works_as_written(app: Flask, client: FlaskClient, database_url: str, tmp_path,
                                             monkeypatch, capsys) -> None:
    make_agent(app, "hana@example.jp")  # README: `furiwake create-agent EMAIL` first if needed
    monkeypatch.setenv("FURIWAKE_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    ids: list[str] = []
    posts = 0
    for block in _shell_blocks():
        token = None
        for line in block:
            if line.startswith("TOKEN="):
                _route_as_the_worker_would(app, ids, "Payment")  # README's queue example asks for routed Payment
                command = _token_command(block)
                assert command is not None
                capsys.readouterr()
                assert furiwake(command[1:]) == 0, line
                token = capsys.readouterr().out.strip()
                continue
            if not line.startswith("curl"):
                continue
            curl = _parse(line)
            url = curl.url.removeprefix(BASE)
            if "<id>" in url:
                assert ids, f"{line}: no ticket made before it"
                url = url.replace("<id>", ids[-1])
            headers = {name: value.replace("$TOKEN", token or "$TOKEN") for name, value in curl.headers.items()}
            assert "$TOKEN" not in "".join(headers.values()), f"{line}: $TOKEN not set in this block"
            if curl.query:
                url += ("&" if "?" in url else "?") + urllib.parse.urlencode(curl.query)
            response = client.open(url, method=curl.method, headers=headers,
                                   data=curl.data.encode("utf-8") if curl.data is not None else None)
            body: dict[str, Any] = response.get_json(silent=True) or {}
            if curl.method == "POST":
                assert response.status_code == 202, (line, response.get_data(as_text=True))
                posts += 1
                created = body["items"] if url.endswith("/batch") else [body]  # a batch: one item per ticket
                for ticket in created:
                    assert {"id", "reference", "status", "url"} <= set(ticket), body  # README's "# → 202 {...}"
                    assert ticket["status"] == "queued"
                    ids.append(ticket["id"])
            else:
                assert response.status_code == 200, (line, response.get_data(as_text=True))
                if "Authorization" not in headers:  # the public view README describes
                    assert {"status", "route"} <= set(body) and "scores" not in body, body
                else:
                    assert isinstance(body.get("items"), list) and body["items"], (line, body)
    assert posts == 3 and len(ids) == 4  # every POST example ran, the batch's two tickets included
