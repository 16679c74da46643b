"""The SLA on the agents' pages: the queue's SLA column (breached rows highlighted), the ticket page's two clocks, the
dashboard with its server-drawn SVG chart, and its JSON twin GET /api/v1/stats."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.orm import Ticket, utcnow
from tests.support.agents import AgentAccount, post_form, ticket_row, visible_text
from tests.support.api import assert_problem
from tests.support.backends import both_backends


def _ticket(app: Flask, route: str | None, minutes_ago: float, *, status: str = "routed",
            customer_email: str | None = "taro@example.jp", **extra: object) -> Ticket:
    """A ticket created `minutes_ago`, routed by the model to `route` (SLA defaults: Account 60 / 480 minutes,
    Payment 30 / 240, Other 240 / 1440)."""
    created = utcnow() - timedelta(minutes=minutes_ago)
    scores = {"Account": 0.1, "Payment": 0.1, "Other": 0.1} | ({route: 0.8} if route else {})
    ticket = Ticket(channel="email", body=f"{route} の問い合わせ", subject=f"{route} {minutes_ago}", status=status,
                    route=route, customer_email=customer_email, created_at=created,
                    routed_at=created + timedelta(seconds=1), model_version="v1", score_account=scores["Account"],
                    score_payment=scores["Payment"], score_other=scores["Other"], **extra)  # fmt: skip
    with app.extensions["furiwake"].unit_of_work() as session:
        session.add(ticket)
    return ticket


def _row(html: str, ticket: Ticket) -> str:
    match = re.search(rf'<tr data-ticket-id="{ticket.id}"[^>]*>.*?</tr>', html, re.S)
    assert match, f"no row for {ticket.reference}"
    return match.group(0)


def test_the_queue_shows_time_left_or_overdue_and_highlights_breached_rows(app: Flask, signed_in: FlaskClient) -> None:
    late = _ticket(app, "Payment", 42)  # 30 minutes to a first response: 12 overdue
    soon = _ticket(app, "Payment", 25)  # 5 of 30 left: less than a quarter
    fresh = _ticket(app, "Account", 15)  # 45 of 60 left
    html = signed_in.get("/agent/?queue=all").get_data(as_text=True)
    assert '<th class="sla">SLA</th>' in html
    late_row, soon_row, fresh_row = _row(html, late), _row(html, soon), _row(html, fresh)
    assert "sla-breached" in late_row.split(">")[0]
    assert re.search(r"overdue 1[23] min", visible_text(late_row)), visible_text(late_row)
    assert "sla-due_soon" in soon_row.split(">")[0] and "sla-breached" not in soon_row
    assert re.search(r"\b[45] min left", visible_text(soon_row))
    assert "sla-ok" in fresh_row.split(">")[0] and re.search(r"\b4[45] min left", visible_text(fresh_row))
    assert "first response" in visible_text(fresh_row)
    fragment = signed_in.get("/agent/queue?queue=payment").get_data(as_text=True)  # the page's own refresh
    assert "sla-breached" in _row(fragment, late).split(">")[0]
    css = signed_in.get("/static/agent.css").get_data(as_text=True)
    assert "tr.sla-breached" in css and "tr.sla-due_soon" in css


def test_a_reply_stops_the_first_response_clock_and_a_note_does_not(app: Flask, signed_in: FlaskClient) -> None:
    ticket = _ticket(app, "Account", 90)
    page = f"/agent/tickets/{ticket.id}"
    html = signed_in.get(page).get_data(as_text=True)
    first = re.search(r'<dd class="sla sla-(\w+)" data-clock="first_response">(.*?)</dd>', html, re.S)
    resolution = re.search(r'<dd class="sla sla-(\w+)" data-clock="resolution">(.*?)</dd>', html, re.S)
    assert first and resolution
    assert first.group(1) == "breached" and "overdue 30 min" in visible_text(first.group(2))
    assert resolution.group(1) == "ok" and re.search(r"6 h (29|30) min left", visible_text(resolution.group(2)))

    assert post_form(signed_in, f"{page}/messages", page, body="社内メモ", action="note").status_code == 303
    assert ticket_row(app, ticket.id).first_response_at is None
    assert post_form(signed_in, f"{page}/messages", page, body="ご連絡ありがとうございます。",
                     action="reply").status_code == 303
    assert ticket_row(app, ticket.id).first_response_at is not None
    html = signed_in.get(page).get_data(as_text=True)
    assert 'class="sla sla-breached" data-clock="first_response"' in html  # answered, but 30 minutes late
    assert "30 min late" in visible_text(html)
    queue = signed_in.get("/agent/?queue=account").get_data(as_text=True)
    row = _row(queue, ticket)  # the queue moves on to the resolution clock
    assert "sla-ok" in row.split(">")[0] and "resolution" in visible_text(row)


def test_the_dashboard_draws_its_chart_as_inline_svg_and_counts_per_route(app: Flask, signed_in: FlaskClient) -> None:
    empty = signed_in.get("/agent/dashboard")
    assert empty.status_code == 200 and "<svg" in empty.get_data(as_text=True)  # a quiet fortnight draws too
    _ticket(app, "Payment", 42)
    _ticket(app, "Payment", 10, first_response_at=utcnow() - timedelta(minutes=4))  # answered after 6 minutes
    _ticket(app, "Other", 30, status="resolved", resolved_at=utcnow())
    _ticket(app, "Account", 20, status="needs_review", review_reason="unfamiliar_text")
    _ticket(app, "Account", 15, status="needs_review", review_reason="low_confidence")
    _ticket(app, "Account", 5, status="needs_review")  # routed before the reason was stored: not counted
    response = signed_in.get("/agent/dashboard")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    svg = re.search(r"<svg[^>]*>.*?</svg>", html, re.S)
    assert svg, "no inline SVG chart"
    assert 'class="chart"' in svg.group(0) and "<title" in svg.group(0)
    bars = re.findall(r'<rect class="bar bar-(received|resolved)"[^>]*data-value="(\d+)"', svg.group(0))
    assert len(bars) == 2 * 14
    # Summed over the fortnight: "today" in DISPLAY_TIMEZONE (Asia/Tokyo) may have begun between these tickets.
    assert sum(int(value) for kind, value in bars if kind == "received") == 6
    assert sum(int(value) for kind, value in bars if kind == "resolved") == 1
    assert "<script" not in html.split("</main>")[0] and "http://" not in svg.group(0).replace(
        'xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched, nothing run
    payment = re.search(r'<tr data-route="Payment">(.*?)</tr>', html, re.S)
    assert payment
    cells = [visible_text(cell) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", payment.group(1), re.S)]
    assert cells[:6] == ["Payment", "30 min / 240 min", "2", "0", "2", "6 min"]
    assert cells[6] == "1 / 0"  # the unanswered one, 12 minutes late
    assert cells[8] == "0 0%"  # none of Payment's held for review
    assert cells[9].startswith("0.0%")
    account = re.search(r'<tr data-route="Account">(.*?)</tr>', html, re.S)
    assert account
    held = [visible_text(cell) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", account.group(1), re.S)][8]
    assert held == "2 67% unfamiliar text 1 · low confidence 1"  # in core.orm.REVIEW_REASONS order
    japanese = signed_in.get("/agent/dashboard", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "見慣れない文面 1 · 確信度が低い 1" in visible_text(japanese)
    nav = re.search(r'<nav class="mainnav">(.*?)</nav>', html, re.S)
    assert nav and 'href="/agent/dashboard"' in nav.group(1) and 'aria-current="page"' in nav.group(1)


def test_the_dashboard_needs_a_signed_in_agent(client: FlaskClient) -> None:
    response = client.get("/agent/dashboard")
    assert response.status_code in (302, 303) and "/agent/login" in response.headers["Location"]


@both_backends
def test_stats_json_needs_a_token_and_returns_the_dashboard_numbers(app: Flask, client: FlaskClient,
                                                                    agent: AgentAccount) -> None:
    _ticket(app, "Account", 120)  # unanswered past 60 minutes
    _ticket(app, "Account", 100, status="resolved", first_response_at=utcnow() - timedelta(minutes=80),
            resolved_at=utcnow() - timedelta(minutes=5), review_reason="low_confidence")  # held, then answered
    assert_problem(client.get("/api/v1/stats"), 401)
    assert_problem(client.get("/api/v1/stats", headers={"Authorization": "Bearer nope"}), 401)
    response = client.get("/api/v1/stats", headers={"Authorization": f"Bearer {agent.token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["timezone"] == "Asia/Tokyo" and body["window_days"] == 14 and len(body["days"]) == 14
    assert body["truncated"] is False
    assert sum(day["received"] for day in body["days"]) == 2 and sum(day["resolved"] for day in body["days"]) == 1
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", body["days"][-1]["day"]) and "T" in body["since"]
    account = {entry["route"]: entry for entry in body["routes"]}["Account"]
    assert [entry["route"] for entry in body["routes"]] == ["Account", "Payment", "Other"]
    assert account.pop("first_response_median_minutes") == pytest.approx(20.0, abs=0.1)
    assert account == {
        "route": "Account", "first_response_target_minutes": 60, "resolution_target_minutes": 480,
        "received": 2, "resolved": 1, "open": 1, "first_responses": 1,
        "breaches": {"first_response": {"open": 1, "closed": 0}, "resolution": {"open": 0, "closed": 0}},
        "held_for_review": {"no_text": 0, "unfamiliar_text": 0, "low_confidence": 1},
        "routed_by_model": 2, "corrected": 0, "override_rate": 0.0,
    }  # fmt: skip
    assert body["total"]["route"] == "all" and body["total"]["first_response_target_minutes"] is None
    document = client.get("/api/v1/openapi.json").get_json()
    assert "bearerAuth" in str(document["paths"]["/api/v1/stats"]["get"]["security"])
