"""POST /webhooks/email/postmark: Postmark's inbound JSON; a mail it cannot use gets 403 (Postmark's stop code)."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from tests.support.api import assert_problem, count_tickets, queued_ticket_ids, stored_tickets
from tests.support.backends import both_backends
from tests.support.email_webhooks import basic_auth, fixture_json, inbound_log

URL = "/webhooks/email/postmark"
BODY = (
    "Furiwake ご担当者様\n\nお世話になっております。\n"
    "5月分の請求書で、解約済みのオプション料金（月額1,100円）が請求されています。\n"
    "解約は4月20日に完了しているはずですので、ご確認のうえ返金をお願いいたします。\n\n以上、よろしくお願いいたします。"
)


def post(client, payload, **kwargs):
    kwargs.setdefault("headers", basic_auth())
    data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    return client.post(URL, data=data, content_type="application/json", **kwargs)


@both_backends
def test_inbound_json_becomes_a_ticket(email_app: Flask, email_client, broker) -> None:
    response = post(email_client, fixture_json("postmark_inbound.json"))
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer == {"id": answer["id"], "duplicate": False}
    [ticket] = stored_tickets(email_app)
    assert ticket.body == BODY  # no name/company/TEL block, no Original Message
    assert (ticket.subject, ticket.customer_name, ticket.customer_email) == (
        "RE: オプション解約のお知らせ", "小林 由美", "yumi@mirai.example")  # fmt: skip
    assert queued_ticket_ids(broker) == [answer["id"]]
    [entry] = inbound_log(email_app)
    assert (entry.provider, entry.outcome, entry.attachments) == ("postmark", "accepted", 1)


@both_backends
def test_retry_is_a_duplicate(email_app: Flask, email_client) -> None:
    first = post(email_client, fixture_json("postmark_inbound.json")).get_json()
    again = post(email_client, fixture_json("postmark_inbound.json"))
    assert (again.status_code, again.get_json()) == (200, {"id": first["id"], "duplicate": True})
    assert count_tickets(email_app) == 1


def test_html_only_payload(email_app: Flask, email_client) -> None:
    payload = {**fixture_json("postmark_inbound.json"), "TextBody": "", "StrippedTextReply": "",
               "HtmlBody": "<div>カードを変更したい。</div><div class=\"gmail_quote\">old</div>"}  # fmt: skip
    assert post(email_client, payload).status_code == 200
    assert stored_tickets(email_app)[0].body == "カードを変更したい。"


def test_from_string_when_from_full_is_missing(email_app: Flask, email_client) -> None:
    payload = {**fixture_json("postmark_inbound.json"), "FromFull": None, "From": "\"Yumi K\" <yumi@mirai.example>"}
    assert post(email_client, payload).status_code == 200
    assert (stored_tickets(email_app)[0].customer_name, stored_tickets(email_app)[0].customer_email) == (
        "Yumi K", "yumi@mirai.example")  # fmt: skip


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{not json", "not UTF-8 JSON"),
    (b"[1, 2]", "not a JSON object"),
    ("{\"TextBody\": \"本文\"}".encode("cp932"), "not UTF-8 JSON"),
    ({"FromFull": {"Email": "a@example.jp"}, "TextBody": "  "}, "no body text"),
    ({"TextBody": "本文です"}, "no sender address"),
    ({"FromFull": {"Email": ["x"]}, "From": 5, "TextBody": "本文", "Headers": "x", "Attachments": {}}, "no sender"),
])  # fmt: skip
def test_unusable_payload_is_rejected_with_403_and_logged(email_app: Flask, email_client, payload, reason) -> None:
    problem = assert_problem(post(email_client, payload), 403)
    assert reason in problem["detail"]
    assert count_tickets(email_app) == 0
    assert [(e.provider, e.outcome) for e in inbound_log(email_app)] == [("postmark", "rejected")]
