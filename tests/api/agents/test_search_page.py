"""The agents' search page and the search box: Japanese words inside sentences, references, addresses, every
status, paging, escaping, and a clear 400 for a search that cannot run; the ticket page lists the customer's other
tickets."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.support.agents import visible_text
from tests.support.backends import both_backends


def _row_ids(page: str) -> list[str]:
    return re.findall(r'<tr data-ticket-id="([0-9a-f-]+)"', page)


@both_backends
def test_search_finds_japanese_words_references_and_addresses(signed_in: FlaskClient, add_ticket) -> None:
    refund = add_ticket("先月の決済が二重になっています。返金してください。", route="Payment",
                        customer_email="hanako@example.jp")
    done = add_ticket("返金はいつですか", status="resolved", route="Payment", customer_email="taro@example.jp")
    login = add_ticket("ログインできません", customer_email="hanako@example.jp")
    assert _row_ids(signed_in.get("/agent/search?q=返金").get_data(as_text=True)) == [str(done.id), str(refund.id)]
    assert _row_ids(signed_in.get("/agent/search?q=返金してください").get_data(as_text=True)) == [str(refund.id)]
    page = signed_in.get(f"/agent/search?q={login.reference}").get_data(as_text=True)
    assert _row_ids(page) == [str(login.id)] and "ログインできません" in visible_text(page)
    assert _row_ids(signed_in.get("/agent/search?q=HANAKO@example.jp").get_data(as_text=True)) == [
        str(login.id), str(refund.id)]
    nothing = signed_in.get("/agent/search?q=解約").get_data(as_text=True)
    assert _row_ids(nothing) == [] and "data-ticket-id" not in nothing


def test_results_page_newest_first(signed_in: FlaskClient, add_ticket, monkeypatch) -> None:
    monkeypatch.setattr("api.agents.search_page.PAGE", 2)
    made = [add_ticket(f"請求書の再発行 {n}") for n in range(3)]
    first = signed_in.get("/agent/search?q=請求書").get_data(as_text=True)
    assert _row_ids(first) == [str(made[2].id), str(made[1].id)]
    older = re.search(r'href="([^"]*before=[^"]*)" rel="next"', first)
    assert older is not None
    second = signed_in.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert _row_ids(second) == [str(made[0].id)] and 'rel="next"' not in second


def test_customers_text_is_escaped_and_a_bad_search_is_a_400(signed_in: FlaskClient, add_ticket) -> None:
    add_ticket("<script>alert(1)</script> 返金")
    page = signed_in.get("/agent/search?q=<script>").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    bad = signed_in.get("/agent/search?q=" + "x" * 201)
    assert bad.status_code == 400 and "200 characters" in visible_text(bad.get_data(as_text=True))


def test_search_needs_a_signed_in_agent(app: Flask) -> None:
    response = app.test_client().get("/agent/search?q=返金")
    assert response.status_code in (302, 303) and "/agent/login" in response.headers["Location"]


def test_the_ticket_page_lists_the_customers_other_tickets(signed_in: FlaskClient, add_ticket) -> None:
    first = add_ticket("前回の問い合わせ", customer_email="hanako@example.jp", status="resolved")
    other = add_ticket("別の人", customer_email="taro@example.jp")
    now = add_ticket("今回の問い合わせ", customer_email="Hanako@Example.jp")
    page = signed_in.get(f"/agent/tickets/{now.id}").get_data(as_text=True)
    section = page[page.index('id="customer-tickets"'):]
    assert first.reference in section and other.reference not in section and now.reference not in section
