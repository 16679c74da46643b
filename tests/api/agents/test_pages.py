"""The queues (counts, oldest first, what each row shows, the refresh fragment) and the escaping of customers' text
on every agent page."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.agents import post_form, visible_text
from tests.support.backends import both_backends

SCRIPT = "<script>alert('xss')</script>"
IMG = '<img src=x onerror="alert(1)">'


def _row_ids(page: str) -> list[str]:
    return re.findall(r'<tr data-ticket-id="([0-9a-f-]+)"', page)


@both_backends
def test_queues_hold_what_they_say_with_counts_oldest_first(app: Flask, signed_in: FlaskClient, agent,
                                                            add_ticket) -> None:
    account_old = add_ticket("ログインできません", route="Account")
    payment = add_ticket("二重請求", route="Payment", scores=(0.05, 0.9, 0.05))
    review = add_ticket("よくわからない", status="needs_review", route="Other", scores=(0.3, 0.3, 0.4))
    failed = add_ticket("壊れた", status="failed", route=None, scores=None, last_error="database down")
    queued = add_ticket("まだ", status="queued", route=None, scores=None)
    account_new = add_ticket("パスワード再設定", route="Account")
    add_ticket("済み", status="resolved", route="Account", resolved_at=account_old.created_at)
    mine = add_ticket("担当", route="Other", scores=(0.1, 0.1, 0.8), assigned_agent_id=agent.id)

    expected = {
        "account": [account_old, account_new], "payment": [payment], "other": [mine], "review": [review, failed],
        "all": [account_old, payment, review, failed, queued, account_new, mine], "mine": [mine],
    }  # fmt: skip
    for queue, tickets in expected.items():
        page = signed_in.get(f"/agent?queue={queue}").get_data(as_text=True)
        assert _row_ids(page) == [str(t.id) for t in tickets], queue
        counts = dict(re.findall(r'data-queue="(\w+)"[^>]*>\s*[^<]+<span class="count">(\d+)</span>', page))
        assert counts == {key: str(len(value)) for key, value in expected.items()}, queue


def test_a_row_shows_age_channel_title_route_and_confidence(signed_in: FlaskClient, add_ticket) -> None:
    add_ticket("本文の一行目\n二行目", subject=None, channel="email", route="Payment", scores=(0.05, 0.87, 0.08))
    add_ticket("本文", subject="件名があります", route="Account", scores=(0.4, 0.59, 0.01))
    page = signed_in.get("/agent?queue=all").get_data(as_text=True)
    text = visible_text(page)
    assert "本文の一行目" in text and "二行目" not in text  # the first line stands in for a missing subject
    assert "件名があります" in text
    assert re.search(r"1 h 5\d min", text)  # added two hours ago, less a minute or two
    assert '<span class="channel">email</span>' in page
    assert 'value="0.870"' in page and "87%" in text and "Payment" in text
    # A person's route over the model's: the bar shows the model's score for the route the ticket has now.
    assert 'value="0.400"' in page and "40%" in text


def test_a_corrected_ticket_is_marked_in_the_queue(signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket(route="Account", scores=(0.6, 0.3, 0.1))
    post_form(signed_in, f"/agent/tickets/{ticket.id}/route", f"/agent/tickets/{ticket.id}", route="Payment")
    page = signed_in.get("/agent?queue=payment").get_data(as_text=True)
    assert 'title="The model said Account">corrected</span>' in page


def test_the_queue_refreshes_itself_from_a_fragment(signed_in: FlaskClient, add_ticket) -> None:
    page = signed_in.get("/agent?queue=payment").get_data(as_text=True)
    assert 'data-refresh-url="/agent/queue?queue=payment"' in page and 'data-refresh-seconds="5"' in page
    assert '<script src="/static/agent.js"></script>' in page
    ticket = add_ticket("新しい請求の質問", route="Payment", scores=(0.1, 0.8, 0.1))
    fragment = signed_in.get("/agent/queue?queue=payment", headers={"X-Requested-With": "fetch"})
    assert fragment.status_code == 200
    html = fragment.get_data(as_text=True)
    assert "<html" not in html and _row_ids(html) == [str(ticket.id)]
    assert '<span class="count">1</span>' in html
    script = signed_in.get("/static/agent.js")
    assert b"X-Requested-With" in script.data and b"setTimeout(refresh, every)" in script.data


def test_unknown_queue_falls_back_to_all(signed_in: FlaskClient) -> None:
    page = signed_in.get("/agent?queue=nope").get_data(as_text=True)
    assert 'class="tab tab-all active"' in page


def test_agent_pages_forbid_inline_scripts_framing_and_caching(signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket()
    for url in ("/agent", "/agent/queue", f"/agent/tickets/{ticket.id}", "/agent/login"):
        response = signed_in.get(url)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, url
        assert response.headers["Cache-Control"] == "no-store", url
        assert "style=" not in response.get_data(as_text=True), url  # the CSP would block it


@both_backends
@pytest.mark.parametrize("where", ["subject", "body"])
def test_customers_markup_is_escaped_on_every_agent_page(app: Flask, signed_in: FlaskClient, add_ticket,
                                                         where: str) -> None:
    hostile = f"{SCRIPT}{IMG}"
    ticket = add_ticket(
        subject=hostile if where == "subject" else "件名",
        body=hostile if where == "body" else "本文",
        customer_name=SCRIPT, customer_email="a@example.jp",
    )  # fmt: skip
    post_form(signed_in, f"/agent/tickets/{ticket.id}/route", f"/agent/tickets/{ticket.id}", route="Payment")
    pages = {
        url: signed_in.get(url).get_data(as_text=True)
        for url in ("/agent?queue=all", "/agent?queue=payment", "/agent/queue?queue=payment",
                    f"/agent/tickets/{ticket.id}")
    }  # fmt: skip
    for url, page in pages.items():
        assert "<script>alert" not in page and "<img src=x" not in page, url
        if where == "subject" or url.startswith("/agent/tickets"):
            assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in page, url
    ticket_page = pages[f"/agent/tickets/{ticket.id}"]
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in ticket_page
    # The ticket page runs no script but its own file (the suggested replies' "use" button), none inline.
    assert re.findall(r"<script\b[^>]*>", ticket_page) == ['<script src="/static/agent.js">']


def test_a_ticket_held_for_review_says_why_on_its_page_and_in_the_queue(signed_in: FlaskClient, add_ticket) -> None:
    """The model's reason (core.orm.REVIEW_REASONS) in the agent's language; a routed ticket has none to show."""
    held = add_ticket("Здравствуйте", status="needs_review", route="Other", scores=(0.3, 0.3, 0.4),
                      review_reason="unfamiliar_text")
    routed = add_ticket("ログインできません", route="Account")
    english = visible_text(signed_in.get(f"/agent/tickets/{held.id}").get_data(as_text=True))
    assert "The model held it for review: the text is unlike anything it was trained on." in english
    japanese = signed_in.get(f"/agent/tickets/{held.id}", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "モデルがレビューに回しました：学習したどの文章とも似ていない文面です。" in visible_text(japanese)
    assert "held it for review" not in visible_text(signed_in.get(f"/agent/tickets/{routed.id}").get_data(as_text=True))
    queue = signed_in.get("/agent?queue=review").get_data(as_text=True)
    assert 'data-reason="unfamiliar_text" title="the text is unlike anything it was trained on"' in queue
