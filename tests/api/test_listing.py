"""GET /api/v1/tickets (agents only): oldest first, keyset pages with an opaque cursor, filters, and 400s naming the
parameter. Its bearer token is tested in tests/api/agents/test_tokens.py."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.orm import Ticket, utcnow
from tests.support.agents import make_agent
from tests.support.api import assert_problem
from tests.support.backends import both_backends


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """An agent's client: every request carries the agent's bearer token."""
    agent_client = app.test_client()
    agent_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_agent(app).token}"
    return agent_client


def _add_tickets(app: Flask, *states: tuple[str, str | None], same_instant: bool = False) -> list[str]:
    """Insert tickets (status, route) directly, as the worker would leave them; return their ids oldest first."""
    start = utcnow() - timedelta(hours=1)
    tickets = [
        Ticket(channel="api", body=f"質問 {n}", status=status, route=route,
               created_at=start if same_instant else start + timedelta(seconds=n))
        for n, (status, route) in enumerate(states)
    ]  # fmt: skip
    with app.extensions["furiwake"].sessions.begin() as session:
        session.add_all(tickets)
    tickets.sort(key=lambda t: (t.created_at, t.id.hex))
    return [str(t.id) for t in tickets]


def _walk(client, query: str) -> tuple[list[str], int]:
    """Follow next_cursor to the end; return the ids seen and the number of pages."""
    ids: list[str] = []
    pages = 0
    cursor = None
    while True:
        url = f"/api/v1/tickets?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        pages += 1
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages


@both_backends
def test_pages_cover_every_ticket_once_oldest_first(app: Flask, client) -> None:
    expected = _add_tickets(app, *[("queued", None)] * 5)
    ids, pages = _walk(client, "limit=2")
    assert ids == expected
    assert pages == 3


@both_backends
def test_tickets_created_at_the_same_instant_are_paged_by_id(app: Flask, client) -> None:
    expected = _add_tickets(app, *[("queued", None)] * 4, same_instant=True)
    assert _walk(client, "limit=1") == (expected, 4)


def test_a_full_last_page_says_so_without_an_empty_extra_page(app: Flask, client) -> None:
    _add_tickets(app, *[("queued", None)] * 4)
    assert _walk(client, "limit=2")[1] == 2


def test_default_limit_is_50(app: Flask, client) -> None:
    _add_tickets(app, *[("queued", None)] * 51)
    page = client.get("/api/v1/tickets").get_json()
    assert len(page["items"]) == 50 and page["next_cursor"] is not None


@both_backends
def test_route_and_status_filters(app: Flask, client) -> None:
    ids = _add_tickets(
        app, ("routed", "Payment"), ("routed", "Account"), ("needs_review", "Payment"), ("queued", None),
        ("routed", "Payment"),
    )  # fmt: skip
    by_index = {ticket_id: n for n, ticket_id in enumerate(ids)}

    def listed(query: str) -> list[int]:
        return [by_index[ticket_id] for ticket_id in _walk(client, query)[0]]

    assert listed("route=Payment") == [0, 2, 4]
    assert listed("status=routed") == [0, 1, 4]
    assert listed("route=Payment&status=routed&limit=1") == [0, 4]
    assert listed("status=failed") == []


def test_items_are_full_tickets(app: Flask, client) -> None:
    [ticket_id] = _add_tickets(app, ("queued", None))
    [item] = client.get("/api/v1/tickets").get_json()["items"]
    assert item == client.get(f"/api/v1/tickets/{ticket_id}").get_json()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("route=Billing", "route"),
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=***", "cursor"),
        (f"cursor={_b64('yesterday|42')}", "cursor"),
        (f"cursor={_b64('2026-01-01T00:00:00|8c7d1b2e-5f3a-4c1e-9d3b-2a1f0e9c8b7a')}", "cursor"),  # naive time
    ],
)
def test_invalid_parameters_are_a_400_naming_them(client, query: str, parameter: str) -> None:
    assert_problem(client.get(f"/api/v1/tickets?{query}"), 400, parameter)


@both_backends
def test_search_pages_newest_first_over_every_status(app: Flask, client) -> None:
    ids = _add_tickets(app, ("queued", None), ("resolved", "Payment"), ("routed", "Payment"), ("routed", "Account"))
    found, pages = _walk(client, "q=質問&limit=2")
    assert found == list(reversed(ids)) and pages == 2
    assert _walk(client, "q=質問&route=Payment&status=resolved")[0] == [ids[1]]
    assert _walk(client, "q=質問 3")[0] == [ids[3]]  # every word must appear
    assert _walk(client, "q=返金")[0] == []


@pytest.mark.parametrize("query", ["q=", "q=" + "x" * 201, "q=" + "+".join(f"w{n}" for n in range(9)), "q=%20"])
def test_a_search_that_cannot_run_is_a_400_naming_q(client, query: str) -> None:
    assert_problem(client.get(f"/api/v1/tickets?{query}"), 400)
