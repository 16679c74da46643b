"""The customer's ticket page (/tickets/<id>): for every status, in both languages, the status, the team, the
reference and what happens next; never a model score, before or after an agent re-routed the ticket.

Real database and broker (tests/api/conftest.py); tickets stored as the worker leaves them."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.intake.web import next_steps, status_and_route_labels
from core.orm import STATUSES, Ticket, utcnow
from tests.support.agents import make_agent

SCORES = (0.8765, 0.0712, 0.0523)  # figures that cannot appear on the page by chance
CATALOGUE = Path(__file__).resolve().parents[2] / "api" / "translations" / "ja" / "LC_MESSAGES" / "messages.mo"


@pytest.fixture
def add_ticket(app: Flask) -> Callable[..., Ticket]:
    def add(status: str, route: str | None, email: str | None = "taro@example.jp") -> Ticket:
        scored = route is not None
        ticket = Ticket(
            channel="web", body="パスワードを忘れました", customer_email=email, status=status, route=route,
            created_at=utcnow() - timedelta(minutes=5), routed_at=utcnow() if scored else None, attempts=1,
            model_version="20261124-000000-test" if scored else None,
            confidence=SCORES[0] if scored else None, score_account=SCORES[0] if scored else None,
            score_payment=SCORES[1] if scored else None, score_other=SCORES[2] if scored else None,
        )  # fmt: skip
        with app.extensions["furiwake"].unit_of_work() as session:
            session.add(ticket)
        return ticket

    return add


def _cell(html: str, name: str) -> str:
    match = re.search(rf'<dd id="{name}"[^>]*>([^<]*)</dd>', html)
    assert match, f"no {name} on the page"
    return html_lib.unescape(match.group(1)).strip()


def _expected(app: Flask, lang: str, *, has_email: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The words the page's own helpers give in that language (the catalogue's, through Flask-Babel)."""
    with app.test_request_context(f"/?lang={lang}"):
        return status_and_route_labels(), next_steps(has_email=has_email)


def _assert_no_scores(text: str) -> None:
    for figure in SCORES:
        for shown in (f"{figure}", f"{figure:.2f}", f"{figure:.3f}", f"{figure * 100:.0f}%", f"{figure * 100:.1f}%"):
            # A number on its own, not digits inside another one: "0.05" is in a created_at of "…:30.054251".
            assert not re.search(rf"(?<![\d.]){re.escape(shown)}(?!\d)", text), shown
    for word in ("confidence", "score", "probab", "model_version", "20261124-000000-test", "信頼度", "確率"):
        assert word not in text.lower(), word


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize("status", STATUSES)
def test_every_status_shows_status_team_reference_and_next_step(app: Flask, client: FlaskClient, add_ticket,
                                                                 status: str, lang: str) -> None:
    route = None if status in ("received", "queued") else "Payment"
    ticket = add_ticket(status, route)
    response = client.get(f"/tickets/{ticket.id}?lang={lang}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    labels, steps = _expected(app, lang, has_email=True)
    assert f'<html lang="{lang}">' in html
    assert _cell(html, "reference") == ticket.reference and ticket.reference
    assert _cell(html, "status") == labels[status] and labels[status]
    assert _cell(html, "route") == (labels["Payment"] if route else "—")
    assert _cell(html, "next-step") == steps[status] and steps[status]
    _assert_no_scores(html)


def test_the_next_step_after_routing_is_a_reply_by_email(app: Flask, client: FlaskClient, add_ticket) -> None:
    with_email = add_ticket("routed", "Account")
    without = add_ticket("routed", "Account", email=None)
    en = {ticket: _cell(client.get(f"/tickets/{ticket.id}?lang=en").get_data(as_text=True), "next-step")
          for ticket in (with_email, without)}
    assert "reply to the e-mail address" in en[with_email]
    assert "e-mail" not in en[without].replace("no e-mail address", "") and "quote your reference" in en[without]
    resolved = add_ticket("resolved", "Account")
    assert "answered" in _cell(client.get(f"/tickets/{resolved.id}?lang=en").get_data(as_text=True), "next-step")


def test_the_status_words_differ_per_status_and_the_script_gets_them_all(app: Flask, client: FlaskClient,
                                                                         add_ticket) -> None:
    """ticket.js swaps the status and next step as the worker routes: it reads them from data attributes, so
    every status (resolved included) must be there, each in different words."""
    ticket = add_ticket("queued", None)
    for lang in ("ja", "en"):
        html = client.get(f"/tickets/{ticket.id}?lang={lang}").get_data(as_text=True)
        labels, steps = _expected(app, lang, has_email=True)
        assert len({labels[status] for status in STATUSES}) == len(STATUSES)
        for status in STATUSES:
            assert html_lib.escape(labels[status], quote=False) in html, (lang, status)
            assert html_lib.escape(steps[status], quote=False) in html, (lang, status)


@pytest.mark.skipif(not CATALOGUE.is_file(), reason="no compiled Japanese catalogue yet (make translations)")
def test_in_japanese_every_status_team_and_next_step_is_japanese(app: Flask, client: FlaskClient,
                                                                 add_ticket) -> None:
    japanese = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    for status in STATUSES:
        ticket = add_ticket(status, "Other")
        html = client.get(f"/tickets/{ticket.id}?lang=ja").get_data(as_text=True)
        for cell in ("status", "route", "next-step"):
            assert japanese.search(_cell(html, cell)), (status, cell, _cell(html, cell))


def test_after_an_agent_re_routes_the_page_shows_the_new_team_and_still_no_score(app: Flask, client: FlaskClient,
                                                                                 add_ticket) -> None:
    ticket = add_ticket("needs_review", "Account")
    token = make_agent(app).token
    response = client.post(f"/api/v1/tickets/{ticket.id}/route", json={"route": "Payment"},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    for lang in ("ja", "en"):
        html = client.get(f"/tickets/{ticket.id}?lang={lang}").get_data(as_text=True)
        labels, _steps = _expected(app, lang, has_email=True)
        assert _cell(html, "route") == labels["Payment"]
        assert _cell(html, "status") == labels["routed"]
        _assert_no_scores(html)
    public = client.get(f"/api/v1/tickets/{ticket.id}")  # what the page's script polls, without a token
    assert public.status_code == 200
    assert set(public.get_json()) == {"id", "reference", "status", "route", "created_at"}
    assert public.get_json()["route"] == "Payment"
    _assert_no_scores(public.get_data(as_text=True))
