"""Replies and notes: from the ticket page's reply box (CSRF-protected form) and the JSON API (bearer token). A reply
is stored pending, published to the `mail` queue, and delivered by the mail task to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from core.config import MailSettings, SmtpServer
from core.mail_queue import MAIL_QUEUE, SEND_MAIL_TASK
from core.orm import Message
from tests.support.agents import AgentAccount, fetch, make_agent, post_form, sign_in, visible_text
from tests.support.api import assert_problem
from tests.support.backends import both_backends
from tests.support.smtp import SmtpServer as LoopbackSmtp
from tests.support.smtp import smtp_server  # noqa: F401  (fixture)
from worker import mail_tasks


@pytest.fixture
def app(make_app: Callable[..., Flask], smtp_server: LoopbackSmtp) -> Flask:  # noqa: F811
    return make_app(mail=MailSettings(smtp=SmtpServer.parse(smtp_server.url), mail_from="Support <support@example.jp>",
                                      smtp_timeout_seconds=5))


def _published(broker: redis.Redis) -> list[int]:
    """The message ids send_mail messages on the `mail` queue carry."""
    found = []
    for raw in broker.lrange(MAIL_QUEUE, 0, -1):
        envelope = json.loads(raw)
        assert envelope["headers"]["task"] == SEND_MAIL_TASK
        found.append(json.loads(base64.b64decode(envelope["body"]))[0][0])
    return found


def _page(ticket) -> str:
    return f"/agent/tickets/{ticket.id}"


@both_backends
def test_the_reply_box_sends_the_reply_by_mail(app: Flask, signed_in: FlaskClient, agent: AgentAccount, add_ticket,
                                               broker: redis.Redis, smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    ticket = add_ticket("パスワードを忘れました", subject="ログイン", customer_email="hanako@example.com",
                        customer_name="髙橋 花子")
    response = post_form(signed_in, f"{_page(ticket)}/messages", _page(ticket), body="再設定しました。\r\n",
                         action="reply")
    assert response.status_code == 303
    [reply] = fetch(app, Message, ticket_id=ticket.id)
    assert (reply.kind, reply.delivery, reply.agent_id) == ("agent_reply", "pending", agent.id)
    assert reply.body == "再設定しました。"  # the textarea's CRLF and trailing blank line gone
    assert _published(broker) == [reply.id]
    page = visible_text(signed_in.get(response.headers["Location"]).get_data(as_text=True))
    assert "Reply by Hana Sato" in page and "Waiting to be sent" in page and "再設定しました。" in page

    assert mail_tasks.deliver(app.extensions["furiwake"], reply.id).outcome == "sent"
    [received] = smtp_server.received
    assert received.recipients == ["hanako@example.com"]
    assert received.message["Subject"] == f"Re: ログイン [{ticket.reference}]"
    page = visible_text(signed_in.get(_page(ticket)).get_data(as_text=True))
    assert "Sent" in page and "Waiting to be sent" not in page


def test_a_note_is_shown_and_never_sent(app: Flask, signed_in: FlaskClient, add_ticket, broker: redis.Redis,
                                        smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    ticket = add_ticket(customer_email="hanako@example.com")
    post_form(signed_in, f"{_page(ticket)}/messages", _page(ticket), body="電話で確認済み <b>x</b>", action="note")
    [note] = fetch(app, Message, ticket_id=ticket.id)
    assert (note.kind, note.delivery, note.recipient) == ("note", None, None)
    assert _published(broker) == []
    html = signed_in.get(_page(ticket)).get_data(as_text=True)
    assert "Internal note by Hana Sato" in visible_text(html) and "&lt;b&gt;x&lt;/b&gt;" in html
    assert smtp_server.received == []


def test_without_a_customer_address_the_box_offers_notes_only(app: Flask, signed_in: FlaskClient,
                                                               add_ticket) -> None:
    ticket = add_ticket(customer_email=None)
    html = signed_in.get(_page(ticket)).get_data(as_text=True)
    assert "Send reply" not in html and "Add note" in html
    response = post_form(signed_in, f"{_page(ticket)}/messages", _page(ticket), body="hello", action="reply")
    assert response.status_code == 303
    assert fetch(app, Message) == []


def test_the_reply_box_needs_a_csrf_token(app: Flask, signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket(customer_email="hanako@example.com")
    response = signed_in.post(f"{_page(ticket)}/messages", data={"body": "hi", "action": "reply"})
    assert response.status_code == 400
    assert fetch(app, Message) == []


@both_backends
def test_the_api_queues_a_reply_and_answers_202(app: Flask, client: FlaskClient, bearer: dict[str, str], add_ticket,
                                                broker: redis.Redis, smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    ticket = add_ticket("I cannot log in", subject="Login", customer_email="ann@example.com")
    response = client.post(f"/api/v1/tickets/{ticket.id}/replies", json={"body": "Reset it for you."}, headers=bearer)
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    assert body["kind"] == "agent_reply" and body["delivery"] == "pending" and body["attempts"] == 0
    assert body["subject"] == f"Re: Login [{ticket.reference}]" and body["message_id"].endswith("@example.jp>")
    assert _published(broker) == [body["id"]]
    assert mail_tasks.deliver(app.extensions["furiwake"], body["id"]).outcome == "sent"
    assert [r.message["Message-ID"] for r in smtp_server.received] == [body["message_id"]]

    note = client.post(f"/api/v1/tickets/{ticket.id}/notes", json={"body": "VIP"}, headers=bearer)
    assert note.status_code == 201 and note.get_json()["kind"] == "note"


def test_the_api_refuses_what_cannot_be_sent(app: Flask, client: FlaskClient, bearer: dict[str, str],
                                             add_ticket) -> None:
    no_address = add_ticket(customer_email=None)
    assert_problem(client.post(f"/api/v1/tickets/{no_address.id}/replies", json={"body": "x"}, headers=bearer), 409)
    ticket = add_ticket(customer_email="ann@example.com")
    assert_problem(client.post(f"/api/v1/tickets/{ticket.id}/replies", json={"body": ""}, headers=bearer), 422)
    assert_problem(client.post(f"/api/v1/tickets/{ticket.id}/replies", json={"body": "x", "to": "a@b.c"},
                               headers=bearer), 422)
    assert client.post(f"/api/v1/tickets/{ticket.id}/replies", json={"body": "x"}).status_code == 401
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_problem(client.post(f"/api/v1/tickets/{unknown}/notes", json={"body": "x"}, headers=bearer), 404)
    assert fetch(app, Message) == []


def test_another_agent_sees_the_conversation(app: Flask, client: FlaskClient, add_ticket) -> None:
    ticket = add_ticket(customer_email="ann@example.com")
    make_agent(app, "ken@example.jp", "Ken Ito")
    sign_in(client, "ken@example.jp")
    post_form(client, f"{_page(ticket)}/messages", _page(ticket), body="Looking into it", action="note")
    assert "Internal note by Ken Ito" in visible_text(client.get(_page(ticket)).get_data(as_text=True))


def test_the_conversation_shows_every_kind_of_entry(app: Flask, signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket(customer_email="ann@example.com", customer_name="Ann Lee")
    with app.extensions["furiwake"].unit_of_work() as session:
        session.add_all([
            Message(ticket_id=ticket.id, kind="customer", channel="email", sender="ann@example.com",
                    body="Any news?", message_id="<2@example.com>"),
            Message(ticket_id=ticket.id, kind="automatic", channel="email", sender="ann@example.com",
                    automatic="Auto-Submitted: auto-replied", subject="Out of office", body="Back on Monday"),
            Message(ticket_id=ticket.id, kind="agent_reply", channel="email", recipient="ann@example.com",
                    body="It went out", delivery="failed", last_error="attempt 1: 550 5.1.1 no such user",
                    message_id="<3@example.jp>", attempts=1),
        ])  # fmt: skip
    html = signed_in.get(_page(ticket)).get_data(as_text=True)
    text = visible_text(html)
    assert "Ann Lee" in text and "Any news?" in text
    assert "<details>" in html and "Automatic mail (Auto-Submitted: auto-replied)" in text
    assert "Not sent" in text and "550 5.1.1 no such user" in text
