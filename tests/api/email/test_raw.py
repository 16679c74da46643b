"""POST /webhooks/email/raw: RFC 822 messages as an MTA pipes them, against the real database and broker."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.support.api import assert_problem, count_tickets, queued_ticket_ids, stored_tickets
from tests.support.backends import both_backends
from tests.support.email_webhooks import basic_auth, fixture_bytes, inbound_log, post_raw

# (fixture, expected body, subject, customer name, customer e-mail, attachments, note expected in the log)
ACCEPTED = [
    ("iso2022jp_reply.eml",
     "サポートご担当者様\n\nお世話になっております。山田です。\n先月分の利用料金が二重に請求されています。\n"
     "カード明細を確認したところ、①5月1日 ②5月2日 の２回引き落とされていました。\n"
     "返金の手続きをお願いできますでしょうか。\n\nよろしくお願いいたします。",
     "Re: 【お問い合わせ】二重請求について", "山田 太郎", "taro.yamada@example.jp", 0, "iso2022_jp_ms"),
    ("shift_jis_outlook.eml",
     "株式会社Furiwake サポート窓口 御中\n\nいつもお世話になっております。㈱髙橋商店の髙橋です。\n"
     "先日、登録しているクレジットカードの有効期限が切れてしまいました。\n"
     "新しいカードに変更したいのですが、支払い方法の変更画面でエラーになります（エラー番号：E-1032）。\n"
     "お手数ですが、変更方法をご教示ください～。\n\nよろしくお願いいたします。",
     "㈱髙橋商店：支払い方法の変更について", "髙橋 花子", "hanako@takahashi-shoten.example", 0, "cp932"),
    ("euc_jp.eml",
     "こんにちは。\n昨日からアカウントにログインできません。\n"
     "パスワード再設定のメールも届かないので、アカウントのロックを解除していただけますか。\n"
     "登録メールアドレスは suzuki@example.ne.jp です。",
     "ログインできません", "鈴木 一郎", "suzuki@example.ne.jp", 0, None),
    ("html_only.eml",
     "お世話になっております。\n4月25日に注文した商品（注文番号 A-20240425-88）が、 まだ届きません。\n"
     "配送状況を教えていただけますか。\n\nよろしくお願いします。",
     "注文した商品が届きません", "佐藤 美咲", "misaki.sato@gmail.example", 0, "HTML only"),
    ("multipart_base64_qp.eml",
     "お世話になっております。\n請求書の宛名を「株式会社みどり工房」に変更して、再発行をお願いします。\n添付の注文書をご確認ください。",
     "請求書の再発行", "Midori Kobo", "info@midori-kobo.example", 2, None),
    ("unknown_charset.eml", "来月でサービスを解約したいです。手続きを教えてください。", "解約について", None,
     "yoshida@example.jp", 0, "unknown charset 'x-user-defined'; read as cp932"),
    ("no_message_id.eml", "先月分の領収書を発行してください。", "領収書", None, "nomsgid@example.jp", 0, None),
]  # fmt: skip


@both_backends
@pytest.mark.parametrize(("name", "body", "subject", "customer", "address", "attachments", "note"), ACCEPTED,
                         ids=[case[0] for case in ACCEPTED])  # fmt: skip
def test_fixture_becomes_one_queued_email_ticket(
    email_app: Flask, email_client, broker, name, body, subject, customer, address, attachments, note
) -> None:
    response = post_raw(email_client, name)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer == {"id": answer["id"], "duplicate": False}

    [ticket] = stored_tickets(email_app)
    assert str(ticket.id) == answer["id"]
    assert (ticket.channel, ticket.status) == ("email", "queued")
    assert ticket.body == body
    assert (ticket.subject, ticket.customer_name, ticket.customer_email) == (subject, customer, address)
    assert queued_ticket_ids(broker) == [answer["id"]]

    [entry] = inbound_log(email_app)
    assert (entry.provider, entry.outcome, entry.ticket_id, entry.attachments) == ("raw", "accepted", ticket.id,
                                                                                   attachments)
    assert entry.dedupe_key == ticket.message_id and len(entry.dedupe_key) == 64
    assert entry.sender == address and entry.subject == subject
    if note:
        assert note in (entry.reason or ""), entry.reason


@both_backends
def test_redelivery_is_a_duplicate_with_the_same_ticket(email_app: Flask, email_client, broker) -> None:
    first = post_raw(email_client, "iso2022jp_reply.eml").get_json()
    again = post_raw(email_client, "iso2022jp_reply.eml")
    assert again.status_code == 200
    assert again.get_json() == {"id": first["id"], "duplicate": True}
    assert count_tickets(email_app) == 1
    assert queued_ticket_ids(broker) == [first["id"]]  # the duplicate is not enqueued again
    assert [(e.outcome, str(e.ticket_id)) for e in inbound_log(email_app)] == [
        ("accepted", first["id"]), ("duplicate", first["id"])]  # fmt: skip


def test_same_message_to_another_recipient_is_another_ticket(email_app: Flask, email_client) -> None:
    first = post_raw(email_client, "iso2022jp_reply.eml", query_string={"recipient": "support@furiwake.example"})
    second = post_raw(email_client, "iso2022jp_reply.eml", query_string={"recipient": "billing@furiwake.example"})
    assert first.get_json()["id"] != second.get_json()["id"]
    assert second.get_json()["duplicate"] is False
    assert count_tickets(email_app) == 2
    # Each ticket keeps the address it was sent to, for rules on the recipient (core/rules.py).
    assert sorted(ticket.recipient for ticket in stored_tickets(email_app)) == [
        "billing@furiwake.example", "support@furiwake.example"]  # fmt: skip


def test_without_message_id_the_content_dedupes(email_app: Flask, email_client) -> None:
    first = post_raw(email_client, "no_message_id.eml").get_json()
    assert post_raw(email_client, "no_message_id.eml").get_json() == {"id": first["id"], "duplicate": True}
    changed = fixture_bytes("no_message_id.eml").replace("領収書を".encode(), "見積書を".encode())
    assert post_raw(email_client, changed).get_json()["duplicate"] is False
    assert count_tickets(email_app) == 2


def test_script_is_stored_verbatim(email_app: Flask, email_client) -> None:
    """Escaping is the pages' job: the ticket keeps exactly what the customer sent."""
    assert post_raw(email_client, "script_injection.eml").status_code == 200
    [ticket] = stored_tickets(email_app)
    assert ticket.subject == "<script>alert('subject')</script> 請求について"
    assert ticket.body == (
        "<script>alert(document.cookie)</script>\n請求書の宛名を変更してください。<img src=x onerror=alert(1)>"
    )
    assert ticket.customer_name == "<b>Mallory</b>"


REJECTED = [
    ("broken_mime.eml", "broken MIME"),
    ("undecodable.eml", "undecodable body"),
    ("quote_only.eml", "no body text after removing quoted messages and signature"),
]


@both_backends
@pytest.mark.parametrize(("name", "reason"), REJECTED, ids=[case[0] for case in REJECTED])
def test_malformed_mail_is_rejected_with_422_and_logged(email_app: Flask, email_client, broker, name, reason) -> None:
    problem = assert_problem(post_raw(email_client, name), 422)
    assert problem["type"] == "urn:furiwake:problem:email-rejected"
    assert reason in problem["detail"]
    assert count_tickets(email_app) == 0 and queued_ticket_ids(broker) == []
    [entry] = inbound_log(email_app)
    assert (entry.provider, entry.outcome, entry.ticket_id) == ("raw", "rejected", None)
    assert reason in (entry.reason or "")


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty message"),
    ("Subject: no sender\r\n\r\n本文です".encode(), "no sender address"),
    (b"From: a@example.jp\r\nSubject: x\r\n\r\n", "no body text"),
    (b"From: a@example.jp\r\nSubject: x\r\nContent-Type: image/png\r\n\r\nxx", "no body text"),
])  # fmt: skip
def test_missing_parts_are_rejected(email_app: Flask, email_client, data: bytes, reason: str) -> None:
    problem = assert_problem(post_raw(email_client, data), 422)
    assert reason in problem["detail"]
    assert count_tickets(email_app) == 0
    assert [entry.outcome for entry in inbound_log(email_app)] == ["rejected"]


def test_wrong_content_type_is_rejected(email_app: Flask, email_client) -> None:
    response = email_client.post("/webhooks/email/raw", data=fixture_bytes("euc_jp.eml"), content_type="text/plain",
                                 headers=basic_auth())  # fmt: skip
    assert "message/rfc822" in assert_problem(response, 422)["detail"]
    assert count_tickets(email_app) == 0


def test_long_body_is_cut_to_the_limit_not_refused(make_app, email_app: Flask) -> None:
    app = make_app(email_webhook_user="inbound", email_webhook_password="s3cret-パスワード", max_body_chars=50)
    mail = "From: a@example.jp\r\nSubject: long\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + "長" * 80
    assert post_raw(app.test_client(), mail.encode()).status_code == 200
    [ticket] = stored_tickets(app)
    assert ticket.body == "長" * 50
    assert "body cut from 80 to 50 characters" in (inbound_log(app)[0].reason or "")


def test_control_characters_never_reach_the_database(email_app: Flask, email_client) -> None:
    mail = "From: a@example.jp\r\nSubject: nul\x00\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n請求\x00書\x07です"
    assert post_raw(email_client, mail.encode()).status_code == 200
    [ticket] = stored_tickets(email_app)
    assert (ticket.subject, ticket.body) == ("nul", "請求書です")
