"""Attachments: kept from every webhook (the first mail's on the ticket, a reply's on its message), limited in size
without refusing the mail, listed on the ticket page and downloadable by signed-in agents only, never rendered."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import quote

import pytest
from flask import Flask
from sqlalchemy import select

from core.attachments import normalise_type, safe_filename, served_type
from core.config import ConfigError, Settings
from core.orm import Attachment, Message, TicketEvent
from tests.support.agents import make_agent, sign_in
from tests.support.api import stored_tickets
from tests.support.backends import both_backends
from tests.support.email_webhooks import MAILGUN_KEY, PASSWORD, PROVIDERS, USER, TestMail, deliver, inbound_log

CUSTOMER = "misaki.sato@example.jp"
BODY = "注文した商品の写真と請求書を添付します。\n色が注文と違っていました。"
PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"
INVOICE = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n"
FILES = (("商品の写真.jpg", "image/jpeg", PHOTO), ("請求書 2024-05.pdf", "application/pdf", INVOICE))


def first_mail(files: tuple[tuple[str, str, bytes], ...] = FILES, **fields: object) -> TestMail:
    defaults: dict = {"sender": CUSTOMER, "subject": "色違いの商品が届きました", "body": BODY,
                      "message_id": f"<{uuid.uuid4().hex}@example.jp>", "name": "佐藤 美咲", "files": files}
    return TestMail(**{**defaults, **fields})


def stored(app: Flask) -> list[Attachment]:
    with app.extensions["furiwake"].sessions() as session:
        return list(session.scalars(select(Attachment).order_by(Attachment.id)))


def events(app: Flask, kind: str) -> list[TicketEvent]:
    with app.extensions["furiwake"].sessions() as session:
        return list(session.scalars(select(TicketEvent).where(TicketEvent.kind == kind).order_by(TicketEvent.id)))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_keeps_the_files_on_the_ticket(email_app: Flask, email_client, provider: str) -> None:
    response = deliver(email_client, provider, first_mail())
    assert response.status_code == 200, response.get_data(as_text=True)
    [ticket] = stored_tickets(email_app)
    assert ticket.body == BODY
    files = stored(email_app)
    assert [(a.filename, a.content_type, a.size, a.data, a.message_id, a.ticket_id) for a in files] == [
        (name, ctype, len(data), data, None, ticket.id) for name, ctype, data in FILES]  # fmt: skip
    [entry] = inbound_log(email_app)
    assert entry.attachments == 2


@both_backends
def test_a_replys_files_belong_to_its_message(email_app: Flask, email_client) -> None:
    ticket_id = uuid.UUID(deliver(email_client, "raw", first_mail(files=())).get_json()["id"])
    [ticket] = stored_tickets(email_app)
    reply = first_mail(files=(("追加の写真.jpg", "image/jpeg", PHOTO),), body="追加の写真です。",
                       subject=f"Re: 色違いの商品が届きました [{ticket.reference}]")  # fmt: skip
    response = deliver(email_client, "raw", reply)
    assert response.get_json() == {"id": str(ticket_id), "duplicate": False, "threaded": True}
    with email_app.extensions["furiwake"].sessions() as session:
        message = session.scalar(select(Message).where(Message.ticket_id == ticket_id, Message.kind == "customer"))
        assert message is not None
    [photo] = stored(email_app)
    assert (photo.ticket_id, photo.message_id, photo.filename, photo.data) == (
        ticket_id, message.id, "追加の写真.jpg", PHOTO)  # fmt: skip
    # The provider's retry stores the file once.
    assert deliver(email_client, "raw", reply).get_json()["duplicate"] is True
    assert len(stored(email_app)) == 1


@pytest.fixture
def small_limits_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(email_webhook_user=USER, email_webhook_password=PASSWORD, mailgun_signing_key=MAILGUN_KEY,
                    attachment_max_bytes=600, attachments_max_bytes_per_mail=700)  # fmt: skip


@pytest.mark.parametrize("provider", ["raw", "sendgrid", "postmark"])
def test_files_over_the_limits_are_dropped_with_a_note(small_limits_app: Flask, provider: str) -> None:
    files = (("big.jpg", "image/jpeg", b"x" * 601), ("a.txt", "text/plain", b"a" * 400),
             ("b.txt", "text/plain", b"b" * 400), ("c.txt", "text/plain", b"c" * 300))  # fmt: skip
    response = deliver(small_limits_app.test_client(), provider, first_mail(files=files))
    assert response.status_code == 200, response.get_data(as_text=True)  # the mail is never refused for its files
    assert [a.filename for a in stored(small_limits_app)] == ["a.txt", "c.txt"]  # 400 + 300 fit in 700
    notes = [e.detail or "" for e in events(small_limits_app, "attachment_dropped")]
    assert len(notes) == 2
    assert "'big.jpg'" in notes[0] and "600-byte limit per file" in notes[0]
    assert "'b.txt'" in notes[1] and "700-byte limit per mail" in notes[1]
    [entry] = inbound_log(small_limits_app)
    assert entry.attachments == 4 and "'big.jpg' dropped" in (entry.reason or "")


# --- download -----------------------------------------------------------------------------------------------------

DANGEROUS = (("page.html", "text/html; charset=utf-8", b"<script>alert(1)</script>"),
             ("logo.svg", "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"),
             ("見積書.pdf", "application/pdf", INVOICE))  # fmt: skip


def _ticket_with(email_app: Flask, email_client, files) -> tuple[uuid.UUID, list[Attachment]]:
    response = deliver(email_client, "raw", first_mail(files=files))
    assert response.status_code == 200, response.get_data(as_text=True)
    return uuid.UUID(response.get_json()["id"]), stored(email_app)


@both_backends
def test_download_needs_a_signed_in_agent(email_app: Flask, email_client) -> None:
    ticket_id, [pdf] = _ticket_with(email_app, email_client, FILES[1:])
    url = f"/agent/tickets/{ticket_id}/attachments/{pdf.id}"
    anonymous = email_app.test_client().get(url)
    assert anonymous.status_code == 302 and "/agent/login" in anonymous.headers["Location"]
    assert INVOICE not in anonymous.get_data()
    agent = make_agent(email_app)
    browser = email_app.test_client()
    sign_in(browser, agent.email)
    response = browser.get(url)
    assert response.status_code == 200
    assert response.get_data() == INVOICE
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    expected = f"attachment; filename=\"___ 2024-05.pdf\"; filename*=UTF-8''{quote('請求書 2024-05.pdf', safe='')}"
    assert response.headers["Content-Disposition"] == expected
    assert "no-store" in response.headers["Cache-Control"]
    # The ticket page lists it, linking the download.
    page = browser.get(f"/agent/tickets/{ticket_id}").get_data(as_text=True)
    assert "請求書 2024-05.pdf" in page and url in page


def test_html_and_svg_are_served_as_downloads_never_rendered(email_app: Flask, email_client) -> None:
    ticket_id, files = _ticket_with(email_app, email_client, DANGEROUS)
    agent = make_agent(email_app)
    browser = email_app.test_client()
    sign_in(browser, agent.email)
    types = []
    for attachment in files:
        response = browser.get(f"/agent/tickets/{ticket_id}/attachments/{attachment.id}")
        assert response.status_code == 200
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        types.append(response.headers["Content-Type"])
    assert types == ["application/octet-stream", "application/octet-stream", "application/pdf"]
    assert [a.content_type for a in files] == ["text/html", "image/svg+xml", "application/pdf"]  # stored as declared


def test_an_attachment_of_another_ticket_is_not_found(email_app: Flask, email_client) -> None:
    first, [pdf] = _ticket_with(email_app, email_client, FILES[1:])
    other, _ = _ticket_with(email_app, email_client, ())
    agent = make_agent(email_app)
    browser = email_app.test_client()
    sign_in(browser, agent.email)
    assert browser.get(f"/agent/tickets/{other}/attachments/{pdf.id}").status_code == 404
    assert browser.get(f"/agent/tickets/{first}/attachments/{pdf.id + 1000}").status_code == 404


# --- names and types ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "ctype", "expected"), [
    ("見積書.pdf", "application/pdf", "見積書.pdf"),
    ("../../etc/passwd", "text/plain", "passwd"),
    ("C:\\Users\\taro\\Desktop\\請求書.xlsx", "application/vnd.ms-excel", "請求書.xlsx"),
    ("..", "image/jpeg", "attachment.jpg"),
    ("", "application/pdf", "attachment.pdf"),
    (".htaccess", "text/plain", "htaccess"),
    ('a<b>:"c"|?*.txt', "text/plain", "a_b_c_.txt"),
    ("invoice\u202egpj.exe", "application/octet-stream", "invoicegpj.exe"),  # no right-to-left override
    ("カ\u3099イト\u3099.pdf", "application/pdf", "ガイド.pdf"),  # macOS sends names decomposed (NFD)
    ("x" * 300 + ".pdf", "application/pdf", "x" * 251 + ".pdf"),
])  # fmt: skip
def test_safe_filename(name: str, ctype: str, expected: str) -> None:
    assert safe_filename(name, ctype) == expected
    assert len(safe_filename(name, ctype)) <= 255


@pytest.mark.parametrize(("declared", "normalised", "served"), [
    ('Image/JPEG; name="x.jpg"', "image/jpeg", "image/jpeg"),
    ("TEXT/HTML; charset=utf-8", "text/html", "application/octet-stream"),
    ("image/svg+xml", "image/svg+xml", "application/octet-stream"),
    ("application/xhtml+xml", "application/xhtml+xml", "application/octet-stream"),
    ("", "application/octet-stream", "application/octet-stream"),
    ("not a type", "application/octet-stream", "application/octet-stream"),
    ("text/plain\r\nX-Injected: 1", "application/octet-stream", "application/octet-stream"),
])  # fmt: skip
def test_content_types(declared: str, normalised: str, served: str) -> None:
    assert normalise_type(declared) == normalised
    assert served_type(normalise_type(declared)) == served


def test_limits_are_read_from_the_environment(tmp_path) -> None:
    env = {"FURIWAKE_HOME": str(tmp_path), "ATTACHMENT_MAX_BYTES": "1048576",
           "ATTACHMENTS_MAX_BYTES_PER_MAIL": "2097152"}
    settings = Settings.from_env(env)
    assert (settings.attachment_max_bytes, settings.attachments_max_bytes_per_mail) == (1048576, 2097152)
    defaults = Settings.from_env({"FURIWAKE_HOME": str(tmp_path)})
    assert (defaults.attachment_max_bytes, defaults.attachments_max_bytes_per_mail) == (10 * 2**20, 25 * 2**20)
    with pytest.raises(ConfigError, match="ATTACHMENT_MAX_BYTES"):
        Settings.from_env({"FURIWAKE_HOME": str(tmp_path), "ATTACHMENT_MAX_BYTES": "10MB"})
