"""Real mail in the shapes furiwake once mishandled (fixtures written by fixtures/make_real_mail.py): each becomes a
ticket holding the customer's Japanese words, with what is readable kept and what is broken noted."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from sqlalchemy import select

from core.orm import Attachment, Message, Ticket, utcnow
from tests.api.email.fixtures.make_real_mail import (
    EUC_TEXT,
    JPEG,
    LONG_SUBJECT,
    PDF,
    POSTMARK_TEXT,
    SENDGRID_TEXT,
)
from tests.support.api import count_tickets, stored_tickets
from tests.support.backends import both_backends
from tests.support.email_webhooks import (
    SENDGRID_FORM,
    SUPPORT,
    basic_auth,
    fixture_bytes,
    inbound_log,
    post_raw,
)


def post_postmark(client, name: str):
    return client.post("/webhooks/email/postmark", data=fixture_bytes(name), content_type="application/json",
                       headers=basic_auth())  # fmt: skip


def attachments(app: Flask) -> list[Attachment]:
    with app.extensions["furiwake"].sessions() as session:
        return list(session.scalars(select(Attachment).order_by(Attachment.id)))


def only_ticket(app: Flask) -> Ticket:
    [ticket] = stored_tickets(app)
    return ticket


def test_postmark_from_full_without_from(email_app: Flask, email_client) -> None:
    response = post_postmark(email_client, "postmark_from_full_only.json")
    assert response.status_code == 200, response.get_data(as_text=True)
    ticket = only_ticket(email_app)
    assert (ticket.customer_email, ticket.customer_name, ticket.subject) == (
        "ken.nakamura@example.co.jp", "中村 健", "ログインできません")  # fmt: skip
    assert ticket.body == POSTMARK_TEXT


@both_backends
def test_postmark_content_only_in_raw_email(email_app: Flask, email_client) -> None:
    response = post_postmark(email_client, "postmark_raw_email.json")
    assert response.status_code == 200, response.get_data(as_text=True)
    ticket = only_ticket(email_app)
    assert (ticket.customer_email, ticket.customer_name, ticket.subject) == (
        "yumi@mirai.example", "小林 由美", "請求書の宛名変更")  # fmt: skip
    assert ticket.body.startswith("請求書の宛名を「株式会社みらい」に変更してください。")
    [pdf] = attachments(email_app)
    assert (pdf.ticket_id, pdf.message_id, pdf.filename, pdf.content_type, pdf.data) == (
        ticket.id, None, "申請書.pdf", "application/pdf", PDF)  # fmt: skip
    [entry] = inbound_log(email_app)
    assert (entry.outcome, entry.attachments) == ("accepted", 1)
    assert "read from RawEmail" in (entry.reason or "")


@both_backends
def test_sendgrid_parsed_with_attachments(email_app: Flask, email_client) -> None:
    response = email_client.post("/webhooks/email/sendgrid", data=fixture_bytes("sendgrid_attachments.form"),
                                 content_type=SENDGRID_FORM, headers=basic_auth())  # fmt: skip
    assert response.status_code == 200, response.get_data(as_text=True)
    ticket = only_ticket(email_app)
    assert (ticket.subject, ticket.body) == ("商品が破損していました", SENDGRID_TEXT)
    stored = attachments(email_app)
    assert [(a.filename, a.content_type, a.size, a.data) for a in stored] == [
        ("破損写真.jpg", "image/jpeg", len(JPEG), JPEG), ("納品書.pdf", "application/pdf", len(PDF), PDF)]  # fmt: skip


def test_carrier_decorated_html_only_iso_2022_jp(email_app: Flask, email_client) -> None:
    response = post_raw(email_client, "mobile_decomail.eml")
    assert response.status_code == 200, response.get_data(as_text=True)
    ticket = only_ticket(email_app)
    assert (ticket.subject, ticket.customer_name) == ("機種変更について", "佐々木 光")
    assert "アプリの機種変更の引き継ぎ方法を教えてください。" in ticket.body
    assert "前の機種はもう手元にありません。" in ticket.body
    [gif] = attachments(email_app)
    assert (gif.filename, gif.content_type) == ("deco01.gif", "image/gif")


def test_iso_2022_jp_photo_mail(email_app: Flask, email_client) -> None:
    response = post_raw(email_client, "iso2022jp_jpeg.eml")
    assert response.status_code == 200, response.get_data(as_text=True)
    ticket = only_ticket(email_app)
    assert (ticket.subject, ticket.customer_name) == ("ドアホンが映りません", "松本 さくら")
    assert ticket.body == "玄関のドアホンの写真です。\n設置後から画面が映りません。"
    [photo] = attachments(email_app)
    assert (photo.filename, photo.content_type, photo.data) == ("ドアホン.jpg", "image/jpeg", JPEG)


def test_utf8_encoded_filenames_and_a_subject_folded_inside_a_word(email_app: Flask, email_client) -> None:
    response = post_raw(email_client, "utf8_encoded_filenames.eml")
    assert response.status_code == 200, response.get_data(as_text=True)
    ticket = only_ticket(email_app)
    assert ticket.subject == LONG_SUBJECT
    assert ticket.body.startswith("保守契約の更新と、請求書の再発行をお願いします。")
    assert [(a.filename, a.data) for a in attachments(email_app)] == [
        ("御見積書_2024年5月.pdf", PDF), ("保守契約書（更新版）.pdf", PDF + b"2")]  # fmt: skip


@both_backends
def test_euc_jp_part_inside_a_multipart_with_the_wrong_boundary(email_app: Flask, email_client) -> None:
    response = post_raw(email_client, "euc_jp_broken_part.eml")
    assert response.status_code == 200, response.get_data(as_text=True)
    ticket = only_ticket(email_app)
    assert (ticket.subject, ticket.body) == ("アプリにログインできない", EUC_TEXT)
    [log] = attachments(email_app)
    assert (log.filename, log.data) == ("log.txt", b"log li")
    [entry] = inbound_log(email_app)
    assert "multipart/alternative: declared boundary missing or unused" in (entry.reason or "")


def test_broken_mime_with_nothing_readable_is_still_refused(email_app: Flask, email_client) -> None:
    """The recovery reads a boundary the body shows; a body that shows none stays broken MIME (422)."""
    response = post_raw(email_client, "broken_mime.eml")
    assert response.status_code == 422
    assert "broken MIME" in response.get_json()["detail"]


@both_backends
def test_delivery_report_without_a_boundary_bounces_our_mail(email_app: Flask, email_client) -> None:
    ack_id = "<ack-0516@furiwake.example>"
    with email_app.extensions["furiwake"].sessions() as session, session.begin():
        ticket = Ticket(channel="email", subject="テスト", body="本文", customer_email="taro@exampel.jp",
                        status="routed", route="Payment")  # fmt: skip
        session.add(ticket)
        session.flush()
        ticket_id = ticket.id
        session.add(Message(ticket_id=ticket_id, kind="acknowledgement", channel="email", sender=SUPPORT,
                            recipient="taro@exampel.jp", subject="受付", body="受け付けました。", message_id=ack_id,
                            delivery="sent", sent_at=utcnow()))  # fmt: skip
    response = post_raw(email_client, "report_no_boundary.eml")
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["id"] == str(ticket_id) and answer["automatic"].startswith("delivery report")
    with email_app.extensions["furiwake"].sessions() as session:
        ack = session.scalar(select(Message).where(Message.message_id == ack_id))
        assert ack is not None and ack.delivery == "bounced"
        assert "could not be delivered" in (ack.last_error or "")
    assert count_tickets(email_app) == 1
    assert attachments(email_app) == []  # automatic mail's parts are not kept


@pytest.mark.parametrize("name", ["mobile_decomail.eml", "iso2022jp_jpeg.eml", "utf8_encoded_filenames.eml"])
def test_no_escape_sequences_or_encoded_words_reach_the_ticket(email_app: Flask, email_client, name: str) -> None:
    assert post_raw(email_client, name).status_code == 200
    ticket = only_ticket(email_app)
    for text in (ticket.subject or "", ticket.customer_name or "", ticket.body):
        assert "\x1b" not in text and "$B" not in text and "=?" not in text
    assert all(uuid.UUID(str(a.ticket_id)) == ticket.id for a in attachments(email_app))
