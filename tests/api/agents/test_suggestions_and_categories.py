"""Fine categories and suggested replies for agents: GET /api/v1/tickets/<id>/suggestions (bearer token), the
optional `category` of POST .../route (422 when unknown or of another route), and the ticket page and queue that
show both, in English and Japanese. The tickets' categories are set directly, as the worker would leave them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.config import RetrainSettings
from core.orm import Correction, Message
from tests.support.agents import fetch, post_form, ticket_row, visible_text
from tests.support.api import assert_problem
from tests.support.backends import both_backends
from tests.support.tiny_corpus import PASSWORD_JA, REFUND_JA, write_corpus

SUGGESTION_FIELDS = {"text", "similarity", "category", "source", "reference", "language"}


@pytest.fixture
def app(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(retrain=RetrainSettings(corpus=write_corpus(tmp_path)))


def _password_ticket(add_ticket):  # noqa: ANN001, ANN202
    return add_ticket("パスワード再設定のメールが届かないのですが", fine_category="Account - Password",
                      fine_confidence=0.83)


def test_suggestions_need_a_token_and_name_an_existing_ticket(client: FlaskClient, bearer, add_ticket) -> None:
    ticket = _password_ticket(add_ticket)
    assert_problem(client.get(f"/api/v1/tickets/{ticket.id}/suggestions"), 401)
    assert_problem(client.get(f"/api/v1/tickets/{ticket.id}/suggestions",
                              headers={"Authorization": "Bearer fwk_wrong"}), 401)
    assert_problem(client.get("/api/v1/tickets/00000000-0000-4000-8000-000000000000/suggestions", headers=bearer),
                   404)


def test_suggestions_are_the_nearest_answers_of_the_tickets_category(client: FlaskClient, bearer,
                                                                     add_ticket) -> None:
    ticket = _password_ticket(add_ticket)
    response = client.get(f"/api/v1/tickets/{ticket.id}/suggestions", headers=bearer)
    assert response.status_code == 200, response.get_data(as_text=True)
    found = response.get_json()
    assert 1 <= len(found) <= 3 and all(set(item) == SUGGESTION_FIELDS for item in found)
    assert found[0] == {**found[0], "text": PASSWORD_JA, "category": "Account - Password", "source": "corpus",
                        "reference": "A1", "language": "ja"}
    assert 0 < found[0]["similarity"] <= 1
    assert {item["category"] for item in found} == {"Account - Password"}


@both_backends
def test_a_sent_reply_on_a_ticket_of_the_category_is_suggested(app: Flask, client: FlaskClient, bearer,
                                                               add_ticket) -> None:
    answered = add_ticket("二重に支払ってしまいました。返金をお願いします", route="Payment",
                          scores=(0.05, 0.9, 0.05), fine_category="Payment - Refund", customer_email="a@example.jp")
    with app.extensions["furiwake"].unit_of_work() as session:
        session.add(Message(ticket_id=answered.id, kind="agent_reply", channel="email", delivery="sent",
                            body="ご返金の手続きを完了しました。", recipient="a@example.jp"))
    ticket = add_ticket("二重に支払ったので返金をお願いします", route="Payment", scores=(0.05, 0.9, 0.05),
                        fine_category="Payment - Refund")
    found = client.get(f"/api/v1/tickets/{ticket.id}/suggestions", headers=bearer).get_json()
    assert (found[0]["text"], found[0]["source"], found[0]["reference"]) == (
        "ご返金の手続きを完了しました。", "agent_reply", answered.reference)
    assert REFUND_JA in [item["text"] for item in found]


@both_backends
def test_rerouting_with_a_category_through_the_api(app: Flask, client: FlaskClient, bearer, agent,
                                                   add_ticket) -> None:
    ticket = _password_ticket(add_ticket)
    response = client.post(f"/api/v1/tickets/{ticket.id}/route", headers=bearer,
                           json={"route": "Payment", "category": "Payment - Refund"})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["route"], body["fine_category"], body["fine_confidence"]) == ("Payment", "Payment - Refund", None)
    [correction] = fetch(app, Correction, ticket_id=ticket.id)
    assert (correction.predicted_category, correction.corrected_category) == ("Account - Password", "Payment - Refund")
    assert correction.agent_id == agent.id
    # The category alone, on the same route: a correction too.
    response = client.post(f"/api/v1/tickets/{ticket.id}/route", headers=bearer,
                           json={"route": "Payment", "category": "Payment - Billing"})
    assert response.get_json()["fine_category"] == "Payment - Billing"
    assert [c.corrected_category for c in fetch(app, Correction, ticket_id=ticket.id)] == [
        "Payment - Refund", "Payment - Billing"]


@pytest.mark.parametrize(("category", "detail"), [
    ("Payment - Refnd", "unknown category 'Payment - Refnd'"),
    ("Payment - Refund", "category 'Payment - Refund' belongs to the Payment route, not Account"),
    ("", None),
])
def test_an_invalid_category_is_a_422_and_changes_nothing(app: Flask, client: FlaskClient, bearer, add_ticket,
                                                          category: str, detail: str | None) -> None:
    ticket = _password_ticket(add_ticket)
    response = client.post(f"/api/v1/tickets/{ticket.id}/route", headers=bearer,
                           json={"route": "Account", "category": category})
    problem = assert_problem(response, 422, None if detail else "category")
    if detail:
        assert detail in problem["detail"]
    assert fetch(app, Correction) == [] and ticket_row(app, ticket.id).fine_category == "Account - Password"


def test_the_ticket_page_shows_the_category_and_suggestions_and_sets_a_category(
        app: Flask, signed_in: FlaskClient, add_ticket) -> None:
    ticket = _password_ticket(add_ticket)
    page_url = f"/agent/tickets/{ticket.id}"
    html = signed_in.get(page_url).get_data(as_text=True)
    text = visible_text(html)
    assert "Category Account - Password 83%" in text
    assert "Suggested replies" in text and PASSWORD_JA in text and "Use this reply" in text
    assert 'src="/static/agent.js"' in html
    assert '<option value="Account - Password" selected>' in html

    # A category of another route with the same route: refused on the page, nothing stored.
    response = post_form(signed_in, f"{page_url}/route", page_url, route="Account", category="Payment - Refund")
    assert response.status_code == 303 and fetch(app, Correction) == []
    assert "belongs to the Payment route" in visible_text(signed_in.get(page_url).get_data(as_text=True))

    # "Set category": the route stays, the category is corrected.
    post_form(signed_in, f"{page_url}/route", page_url, route="Account", category="Account - Login")
    [correction] = fetch(app, Correction, ticket_id=ticket.id)
    assert (correction.corrected_route, correction.corrected_category) == ("Account", "Account - Login")
    text = visible_text(signed_in.get(page_url).get_data(as_text=True))
    assert "Category Account - Login (model: Account - Password)" in text

    # The untouched select beside a route button confirms nothing about the category.
    post_form(signed_in, f"{page_url}/route", page_url, route="Other", category="Account - Login")
    assert fetch(app, Correction)[-1].corrected_category is None
    assert ticket_row(app, ticket.id).fine_category is None  # an Account category does not stay on Other


def test_the_queue_and_ticket_page_name_the_category_in_japanese(signed_in: FlaskClient, add_ticket) -> None:
    ticket = _password_ticket(add_ticket)
    post_form(signed_in, "/agent/language", "/agent/", language="ja")  # the agent's profile: Japanese
    queue = visible_text(signed_in.get("/agent/?queue=all").get_data(as_text=True))
    assert "カテゴリ" in queue and "アカウント - パスワード 83%" in queue
    page = visible_text(signed_in.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True))
    assert "返信の候補" in page and "この返信を使う" in page and "類似度" in page and "回答集 A1" in page
