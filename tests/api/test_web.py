"""The customers' web form and ticket page: Japanese first, English on request, ticket text always escaped, CSRF
token required."""

from __future__ import annotations

import html
import json
import re
import uuid

import pytest
from flask import Flask
from sqlalchemy import update

from api.i18n import LANGUAGES
from api.intake.web import next_steps, status_and_route_labels
from core.orm import STATUSES, Ticket, utcnow
from tests.support.agents import csrf_token
from tests.support.api import count_tickets, queued_ticket_ids, stored_tickets
from tests.support.backends import both_backends


def submit(client, data: dict, url: str = "/"):
    """POST the form as a browser does, with the CSRF token the form page carries."""
    return client.post(url, data={"csrf_token": csrf_token(client, "/"), **data})


def test_form_is_japanese_by_default(client) -> None:
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="ja">' in page
    assert "送信" in page and 'name="subject"' in page and 'name="customer_email"' in page and "<textarea" in page


@pytest.mark.parametrize(
    ("url", "accept_language", "lang"),
    [
        ("/?lang=en", None, "en"),
        ("/", "en-US,en;q=0.9", "en"),
        ("/", "fr-FR", "ja"),
        ("/?lang=ja", "en-US", "ja"),
        ("/?lang=xx", "en", "en"),
    ],
)
def test_form_language_from_query_then_browser(client, url: str, accept_language: str | None, lang: str) -> None:
    headers = {"Accept-Language": accept_language} if accept_language else {}
    response = client.get(url, headers=headers)
    assert "Accept-Language" in response.headers["Vary"]
    page = response.get_data(as_text=True)
    assert f'<html lang="{lang}">' in page
    assert ("Ask</button>" in page) == (lang == "en")
    assert ("送信</button>" in page) == (lang == "ja")


@both_backends
def test_post_creates_a_web_ticket_and_redirects_to_its_page(app: Flask, client, broker) -> None:
    response = submit(
        client, {"subject": "", "customer_email": "hanako@example.jp", "body": "ポイントが反映されません", "lang": "ja"}
    )
    assert response.status_code == 303
    [ticket] = stored_tickets(app)
    assert response.headers["Location"] == f"/tickets/{ticket.id}?lang=ja"
    assert (ticket.channel, ticket.status, ticket.subject) == ("web", "queued", None)
    assert ticket.customer_email == "hanako@example.jp"
    assert queued_ticket_ids(broker) == [str(ticket.id)]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert ticket.reference in page and "振り分け待ち" in page and "自動で更新されます" in page
    # Anyone holding the link sees this page: not the text, not the address.
    assert "ポイントが反映されません" not in page and "hanako@example.jp" not in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"body": "   ", "lang": "ja"}, "お問い合わせ内容を入力してください"),
        ({"body": "質問", "customer_email": "nope", "lang": "ja"}, "メールアドレスの形式が正しくありません"),
        ({"body": "x" * 20_001, "lang": "en"}, "Please write your question (at most 20,000 characters)"),
        ({"body": "a\x00b", "lang": "en"}, "characters we cannot accept"),
    ],
)
def test_invalid_form_is_shown_again_with_the_message(app: Flask, client, form: dict, message: str) -> None:
    response = submit(client, {"subject": "<b>件名</b>", **form})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    assert 'value="&lt;b&gt;件名&lt;/b&gt;"' in page  # what was typed is kept, escaped
    assert count_tickets(app) == 0


def test_ticket_page_shows_none_of_the_customers_text(client) -> None:
    location = submit(
        client, {"subject": "<img src=x onerror=alert(1)>", "body": "<script>alert('x')</script>"}
    ).headers["Location"]
    page = client.get(location).get_data(as_text=True)
    assert "alert(" not in page and "<img" not in page


def test_ticket_page_polls_the_api_and_shows_the_route_once_routed(app: Flask, client) -> None:
    location = submit(client, {"body": "請求額が違います"}, url="/?lang=ja").headers["Location"]
    ticket_id = location.split("/")[2].split("?")[0]
    page = client.get(location).get_data(as_text=True)
    assert f'data-api-url="/api/v1/tickets/{ticket_id}"' in page
    assert "/static/ticket.js" in page and "振り分け待ち" in page
    script = client.get("/static/ticket.js")
    assert script.status_code == 200 and b"setTimeout(poll, 1000)" in script.data

    with app.extensions["furiwake"].sessions.begin() as session:
        session.execute(
            update(Ticket)
            .where(Ticket.id == uuid.UUID(ticket_id))
            .values(status="routed", route="Payment", confidence=0.874, routed_at=utcnow())
        )
    page = client.get(f"/tickets/{ticket_id}?lang=en").get_data(as_text=True)
    assert "Payment team" in page and "Routed" in page and "quote your reference" in page  # no e-mail was given
    assert "87%" not in page and "onfidence" not in page  # no model score for customers


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("status", STATUSES)
def test_ticket_page_says_every_status_in_words(app: Flask, client, status: str, lang: str) -> None:
    location = submit(client, {"body": "請求額が違います", "customer_email": "a@example.jp"}).headers["Location"]
    ticket_id = uuid.UUID(location.split("/")[2].split("?")[0])
    with app.extensions["furiwake"].sessions.begin() as session:
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(status=status, route="Account"))
    page = client.get(f"/tickets/{ticket_id}?lang={lang}").get_data(as_text=True)
    with app.test_request_context(f"/tickets/{ticket_id}?lang={lang}"):  # the words the catalogue gives
        words, steps = status_and_route_labels(), next_steps(has_email=True)
    in_japanese = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    assert all(bool(in_japanese.search(text)) == (lang == "ja") for text in (*words.values(), *steps.values()))
    status_cell = re.search(r'<dd id="status" data-status="(\w+)">([^<]*)</dd>', page)
    assert status_cell and status_cell.groups() == (status, words[status]) and status_cell.group(2).strip()
    assert words["Account"] in page and html.escape(steps[status]) in page
    labels = json.loads(html.unescape(re.search(r"data-labels='([^']*)'", page).group(1)))  # type: ignore[union-attr]
    assert set(STATUSES) | {"Account", "Payment", "Other"} <= set(labels) and all(labels.values())


def test_unknown_ticket_page_is_an_html_404(client) -> None:
    response = client.get(f"/tickets/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "エラーが発生しました" in response.get_data(as_text=True)


def test_oversized_form_is_refused_with_a_413_page(app: Flask, client) -> None:
    response = submit(client, {"body": "x" * 1_100_000}, url="/?lang=en")
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert count_tickets(app) == 0


@pytest.mark.parametrize("token", [None, "forged", ""])
def test_form_without_a_valid_csrf_token_is_refused_keeping_what_was_typed(app: Flask, client, token) -> None:
    data = {"subject": "請求について", "body": "<b>二重に</b>請求されています", "lang": "ja"}
    response = client.post("/", data=data if token is None else {**data, "csrf_token": token})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "有効期限が切れた" in page
    assert "&lt;b&gt;二重に&lt;/b&gt;請求されています</textarea>" in page and 'value="請求について"' in page
    assert 'name="csrf_token" value="' in page  # a fresh token: sending again works
    assert count_tickets(app) == 0
    assert submit(client, data).status_code == 303


def test_form_and_its_session_cookie(client) -> None:
    response = client.get("/")
    assert 'name="csrf_token"' in response.get_data(as_text=True)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
