"""POST /webhooks/email/sendgrid: Inbound Parse in parsed mode (fields in the mail's charsets) and raw mode."""

from __future__ import annotations

from flask import Flask

from tests.api.email.fixtures.make_fixtures import form_part
from tests.support.api import assert_problem, count_tickets, queued_ticket_ids, stored_tickets
from tests.support.backends import both_backends
from tests.support.email_webhooks import SENDGRID_FORM, basic_auth, fixture_bytes, inbound_log

ISO_BODY = (
    "サポートご担当者様\n\nお世話になっております。山田です。\n先月分の利用料金が二重に請求されています。\n"
    "カード明細を確認したところ、①5月1日 ②5月2日 の２回引き落とされていました。\n"
    "返金の手続きをお願いできますでしょうか。\n\nよろしくお願いいたします。"
)


def post(client, body: bytes, **kwargs):
    kwargs.setdefault("headers", basic_auth())
    return client.post("/webhooks/email/sendgrid", data=body, content_type=SENDGRID_FORM, **kwargs)


@both_backends
def test_parsed_mode_iso_2022_jp_reply(email_app: Flask, email_client, broker) -> None:
    response = post(email_client, fixture_bytes("sendgrid_parsed.form"))
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer == {"id": answer["id"], "duplicate": False}
    [ticket] = stored_tickets(email_app)
    assert ticket.body == ISO_BODY  # no "--" signature, no quoted answer
    assert (ticket.channel, ticket.subject) == ("email", "Re: 【お問い合わせ】二重請求について")
    assert (ticket.customer_name, ticket.customer_email) == ("山田 太郎", "taro.yamada@example.jp")
    assert queued_ticket_ids(broker) == [answer["id"]]
    [entry] = inbound_log(email_app)
    assert (entry.provider, entry.outcome, entry.attachments) == ("sendgrid", "accepted", 1)
    assert "text: charset iso-2022-jp read as iso2022_jp_ms" in (entry.reason or "")


@both_backends
def test_retry_is_a_duplicate(email_app: Flask, email_client) -> None:
    first = post(email_client, fixture_bytes("sendgrid_parsed.form")).get_json()
    again = post(email_client, fixture_bytes("sendgrid_parsed.form"))
    assert (again.status_code, again.get_json()) == (200, {"id": first["id"], "duplicate": True})
    assert count_tickets(email_app) == 1
    assert [e.outcome for e in inbound_log(email_app)] == ["accepted", "duplicate"]


def test_the_same_mail_through_another_provider_is_a_duplicate(email_app: Flask, email_client) -> None:
    """The key is Message-ID + recipient, whichever way the mail came in."""
    first = post(email_client, fixture_bytes("sendgrid_parsed.form")).get_json()
    raw = email_client.post("/webhooks/email/raw", data=fixture_bytes("iso2022jp_reply.eml"),
                            content_type="message/rfc822", headers=basic_auth())  # fmt: skip
    assert raw.get_json() == {"id": first["id"], "duplicate": True}


def test_raw_mode_shift_jis_outlook(email_app: Flask, email_client) -> None:
    response = post(email_client, fixture_bytes("sendgrid_raw.form"))
    assert response.status_code == 200, response.get_data(as_text=True)
    [ticket] = stored_tickets(email_app)
    assert ticket.body.startswith("株式会社Furiwake サポート窓口 御中\n\nいつもお世話になっております。㈱髙橋商店")
    assert ticket.body.endswith("お手数ですが、変更方法をご教示ください～。\n\nよろしくお願いいたします。")
    assert "━" not in ticket.body and "差出人" not in ticket.body and "TEL" not in ticket.body
    assert (ticket.subject, ticket.customer_name) == ("㈱髙橋商店：支払い方法の変更について", "髙橋 花子")
    [entry] = inbound_log(email_app)
    assert (entry.provider, entry.outcome) == ("sendgrid", "accepted")


def test_shift_jis_fields_are_read_with_the_declared_charset(email_app: Flask, email_client) -> None:
    body = b"".join([
        form_part("from", "髙橋 <t@example.jp>".encode("cp932")),
        form_part("subject", "請求について".encode("cp932")),
        form_part("text", "請求書を再発行してください。\r\n".encode("cp932")),
        form_part("charsets", b'{"from":"Shift_JIS","subject":"Shift_JIS","text":"Shift_JIS"}'),
        form_part("envelope", b'{"to":["support@furiwake.example"],"from":"t@example.jp"}'),
    ]) + b"--xYzZY--\r\n"  # fmt: skip
    assert post(email_client, body).status_code == 200
    [ticket] = stored_tickets(email_app)
    assert (ticket.customer_name, ticket.subject) == ("髙橋", "請求について")
    assert ticket.body == "請求書を再発行してください。"


def test_html_only_parsed_mode(email_app: Flask, email_client) -> None:
    body = b"".join([
        form_part("from", b"a@example.jp"),
        form_part("html", "<p>ログインできません。</p><blockquote>前回の回答</blockquote>".encode()),
        form_part("charsets", b'{"html":"UTF-8"}'),
    ]) + b"--xYzZY--\r\n"  # fmt: skip
    assert post(email_client, body).status_code == 200
    assert stored_tickets(email_app)[0].body == "ログインできません。"


def test_missing_sender_is_rejected_with_422(email_app: Flask, email_client) -> None:
    body = form_part("text", "本文".encode()) + b"--xYzZY--\r\n"
    assert "no sender address" in assert_problem(post(email_client, body), 422)["detail"]
    assert count_tickets(email_app) == 0
    assert [e.outcome for e in inbound_log(email_app)] == ["rejected"]


def test_not_form_data_is_rejected_with_422(email_app: Flask, email_client) -> None:
    response = email_client.post("/webhooks/email/sendgrid", json={"text": "x"}, headers=basic_auth())
    assert "expected form data" in assert_problem(response, 422)["detail"]
    assert count_tickets(email_app) == 0


def test_broken_raw_mime_is_rejected(email_app: Flask, email_client) -> None:
    body = form_part("email", fixture_bytes("broken_mime.eml")) + b"--xYzZY--\r\n"
    assert "broken MIME" in assert_problem(post(email_client, body), 422)["detail"]
    assert [(e.provider, e.outcome) for e in inbound_log(email_app)] == [("sendgrid", "rejected")]


def test_large_mail_with_attachments_is_accepted(email_app: Flask, email_client) -> None:
    """Beyond MAX_REQUEST_BYTES of the JSON API (1 MB): attachments travel in the same request."""
    body = fixture_bytes("sendgrid_parsed.form").replace(
        b"--xYzZY--", form_part("attachment2", b"\0" * 5_000_000, "big.bin", "application/octet-stream") + b"--xYzZY--"
    )
    assert post(email_client, body).status_code == 200
    assert inbound_log(email_app)[0].attachments == 2  # the `attachments` field says 1, but two files came


def test_odd_field_values_are_no_server_error(email_app: Flask, email_client) -> None:
    body = b"".join([
        form_part("from", b"a@example.jp"),
        form_part("text", "本文です".encode()),
        form_part("attachments", "²".encode()),
        form_part("envelope", b'{"to": [1, null, "support@furiwake.example"]}'),
        form_part("charsets", b'{"text": 5, "from": ["x"]}'),
        form_part("headers", b"\xff\xfeMessage-ID <broken"),
    ]) + b"--xYzZY--\r\n"  # fmt: skip
    assert post(email_client, body).status_code == 200
    assert inbound_log(email_app)[0].attachments == 0


def test_undecodable_text_is_rejected_with_422(email_app: Flask, email_client) -> None:
    noise = bytes(range(256)) * 8
    body = form_part("from", b"a@example.jp") + form_part("text", noise) + b"--xYzZY--\r\n"
    assert "undecodable body" in assert_problem(post(email_client, body), 422)["detail"]
    assert count_tickets(email_app) == 0
    assert [e.outcome for e in inbound_log(email_app)] == ["rejected"]
