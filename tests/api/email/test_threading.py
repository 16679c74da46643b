"""Replies thread onto their ticket and automatic mail opens none, through every webhook (SendGrid parsed and raw,
Mailgun forward and MIME, Postmark, the raw pipe), against a real database and broker."""

from __future__ import annotations

import uuid
from email.header import Header

import pytest
from flask import Flask
from sqlalchemy import select

from core.conversations import entries, reference_tag
from core.orm import Message, Ticket, TicketEvent, utcnow
from tests.support.api import count_tickets, queued_ticket_ids, stored_tickets
from tests.support.backends import both_backends
from tests.support.email_webhooks import PROVIDERS, SUPPORT, TestMail, deliver, inbound_log

CUSTOMER = "taro.yamada@example.jp"
OUR_ACK = "<ack-20240508.1@furiwake.test>"
REPLY = "先ほどの件、カード会社にも確認しました。\n二重の引き落としは5月1日と2日です。"
OOO = "5月6日まで休暇のため不在にしております。\n急ぎの場合は代表までご連絡ください。"
per_provider = pytest.mark.parametrize("provider", PROVIDERS)


def open_ticket(app: Flask, *, status: str = "routed", email: str = CUSTOMER) -> tuple[uuid.UUID, str]:
    """A ticket as the intake and the worker left it, with the acknowledgement we sent for it: (id, reference)."""
    with app.extensions["furiwake"].sessions() as session, session.begin():
        ticket = Ticket(channel="email", subject="二重請求について", body="先月分が二重に請求されています。",
                        customer_name="山田 太郎", customer_email=email, status=status, route="Payment",
                        resolved_at=utcnow() if status == "resolved" else None)  # fmt: skip
        session.add(ticket)
        session.flush()
        session.add(Message(ticket_id=ticket.id, kind="acknowledgement", channel="email", sender=SUPPORT,
                            recipient=email, subject=f"{reference_tag(ticket.reference)} 受付のお知らせ",
                            body="お問い合わせを受け付けました。", message_id=OUR_ACK, delivery="sent",
                            sent_at=utcnow()))  # fmt: skip
        return ticket.id, ticket.reference


def conversation(app: Flask, ticket_id: uuid.UUID) -> list[Message]:
    with app.extensions["furiwake"].sessions() as session:
        return entries(session, ticket_id)


def reply(**fields: object) -> TestMail:
    defaults: dict = {"sender": CUSTOMER, "subject": "Re: 受付のお知らせ", "body": REPLY,
                      "message_id": f"<{uuid.uuid4().hex}@example.jp>", "in_reply_to": OUR_ACK, "references": OUR_ACK}
    return TestMail(**{**defaults, **fields})


@both_backends
@per_provider
def test_a_reply_naming_our_mail_joins_the_ticket(email_app: Flask, email_client, broker, provider: str) -> None:
    ticket_id, _ = open_ticket(email_app)
    mail = reply()
    response = deliver(email_client, provider, mail)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"id": str(ticket_id), "duplicate": False, "threaded": True}
    [ack, entry] = conversation(email_app, ticket_id)
    assert (entry.kind, entry.channel, entry.body, entry.sender) == ("customer", "email", REPLY, CUSTOMER)
    assert (entry.message_id, entry.in_reply_to, entry.automatic) == (mail.message_id, OUR_ACK, None)
    assert count_tickets(email_app) == 1
    assert queued_ticket_ids(broker) == []  # a reply is not routed again
    [ticket] = stored_tickets(email_app)
    assert (ticket.status, ticket.route) == ("routed", "Payment")
    # The provider's retry stores nothing more.
    again = deliver(email_client, provider, mail)
    assert again.get_json() == {"id": str(ticket_id), "duplicate": True, "threaded": True}
    assert len(conversation(email_app, ticket_id)) == 2
    assert [(e.outcome, e.ticket_id) for e in inbound_log(email_app)] == [("accepted", ticket_id),
                                                                          ("duplicate", ticket_id)]  # fmt: skip


@per_provider
def test_a_subject_tag_threads_without_in_reply_to(email_app: Flask, email_client, broker, provider: str) -> None:
    ticket_id, reference = open_ticket(email_app)
    subject = f"返信: Re: {reference_tag(reference)} 受付のお知らせ"
    response = deliver(email_client, provider, reply(subject=subject, in_reply_to=None, references=None))
    assert response.get_json() == {"id": str(ticket_id), "duplicate": False, "threaded": True}
    assert [m.kind for m in conversation(email_app, ticket_id)] == ["acknowledgement", "customer"]
    assert queued_ticket_ids(broker) == []


@per_provider
def test_another_sender_with_the_tag_opens_a_new_ticket(email_app: Flask, email_client, broker, provider: str) -> None:
    ticket_id, reference = open_ticket(email_app)
    mail = reply(sender="hanako@example.jp", name="髙橋 花子", subject=f"Re: {reference_tag(reference)} 受付のお知らせ")
    response = deliver(email_client, provider, mail)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer == {"id": answer["id"], "duplicate": False} and answer["id"] != str(ticket_id)
    assert [m.kind for m in conversation(email_app, ticket_id)] == ["acknowledgement"]  # nothing of hers on his
    new = next(t for t in stored_tickets(email_app) if str(t.id) == answer["id"])
    assert (new.customer_email, new.body) == ("hanako@example.jp", REPLY)
    assert queued_ticket_ids(broker) == [answer["id"]]


@both_backends
@per_provider
def test_a_reply_to_a_resolved_ticket_reopens_it(email_app: Flask, email_client, provider: str) -> None:
    ticket_id, _ = open_ticket(email_app, status="resolved")
    response = deliver(email_client, provider, reply())
    assert response.get_json()["threaded"] is True
    [ticket] = stored_tickets(email_app)
    assert (ticket.status, ticket.resolved_at, ticket.route) == ("routed", None, "Payment")
    with email_app.extensions["furiwake"].sessions() as session:
        [event] = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id))
    assert (event.kind, event.detail) == ("reopened", "customer replied by email")


@per_provider
def test_an_out_of_office_reply_is_kept_on_the_ticket(email_app: Flask, email_client, broker, provider: str) -> None:
    ticket_id, reference = open_ticket(email_app, status="resolved")
    mail = reply(subject=f"自動応答: {reference_tag(reference)} 受付のお知らせ", body=OOO,
                 headers=(("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")))  # fmt: skip
    response = deliver(email_client, provider, mail)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = {"id": str(ticket_id), "duplicate": False, "automatic": "Auto-Submitted: auto-replied"}
    assert response.get_json() == answer
    [_, entry] = conversation(email_app, ticket_id)
    assert (entry.kind, entry.automatic, entry.body) == ("automatic", "Auto-Submitted: auto-replied", OOO)
    assert count_tickets(email_app) == 1
    assert stored_tickets(email_app)[0].status == "resolved"  # an auto-reply asks nothing: it reopens nothing
    assert queued_ticket_ids(broker) == []


def bounce(action: str = "failed") -> TestMail:
    """Postfix's report for our acknowledgement to a mistyped address (Postfix marks it Auto-Submitted too)."""
    returned = (f"From: Furiwake Support <{SUPPORT}>\nTo: taro@exampel.jp\n"
                f"Subject: {Header('受付のお知らせ', 'utf-8').encode()}\n"
                f"Message-ID: {OUR_ACK}\nDate: Wed, 08 May 2024 11:59:58 +0900\n")  # fmt: skip
    failed = (("X-Failed-Recipients", "taro@exampel.jp"),) if action == "failed" else ()
    return TestMail(sender="MAILER-DAEMON@mx.furiwake.example", name="Mail Delivery System",
                    subject="Undelivered Mail Returned to Sender",
                    message_id=f"<20240508030005.{action}@mx.furiwake.example>",
                    body="I'm sorry to have to inform you that your message could not be delivered.\n"
                         "<taro@exampel.jp>: host mx.exampel.jp said: 550 5.1.1 User unknown",
                    headers=(("Auto-Submitted", "auto-replied"), *failed), returned=returned,
                    action=action)  # fmt: skip


@both_backends
@per_provider
def test_a_bounce_marks_our_mail_bounced(email_app: Flask, email_client, broker, provider: str) -> None:
    ticket_id, _ = open_ticket(email_app, email="taro@exampel.jp")
    response = deliver(email_client, provider, bounce())
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert (answer["id"], answer["duplicate"], answer["automatic"].startswith("delivery report")) == (
        str(ticket_id), False, True)  # fmt: skip
    [ack, entry] = conversation(email_app, ticket_id)
    assert (ack.delivery, entry.kind) == ("bounced", "automatic")
    assert "550 5.1.1 User unknown" in (ack.last_error or "")
    assert count_tickets(email_app) == 1
    assert queued_ticket_ids(broker) == []


@pytest.mark.parametrize("provider", ["raw", "sendgrid_raw", "mailgun_mime"])  # the webhooks that pass the MIME
def test_a_delay_notice_is_kept_but_bounces_nothing(email_app: Flask, email_client, provider: str) -> None:
    ticket_id, _ = open_ticket(email_app, email="taro@exampel.jp")
    response = deliver(email_client, provider, bounce("delayed"))
    expected = "delivery report (multipart/report; report-type=delivery-status); delayed"
    assert response.get_json()["automatic"] == expected
    [ack, entry] = conversation(email_app, ticket_id)
    assert (ack.delivery, ack.last_error, entry.kind) == ("sent", None, "automatic")


@both_backends
def test_automatic_mail_for_no_ticket_is_logged_and_stored_nowhere(email_app: Flask, email_client, broker) -> None:
    mail = reply(in_reply_to="<someone-else@example.jp>", references=None, subject="Out of Office: 会議の件",
                 headers=(("Auto-Submitted", "auto-replied"),))  # fmt: skip
    response = deliver(email_client, "raw", mail)
    assert response.status_code == 200  # not 4xx: the provider must neither retry nor bounce it
    assert response.get_json() == {"id": None, "duplicate": False, "automatic": "Auto-Submitted: auto-replied"}
    assert count_tickets(email_app) == 0
    assert queued_ticket_ids(broker) == []
    [entry] = inbound_log(email_app)
    assert (entry.outcome, entry.ticket_id) == ("rejected", None)
    assert entry.reason == "automatic mail (Auto-Submitted: auto-replied) for no ticket"


@both_backends
def test_a_list_mailing_to_support_opens_no_ticket(email_app: Flask, email_client) -> None:
    mail = reply(sender="news@shop.example", in_reply_to=None, references=None, subject="【週末限定】ポイント10倍",
                 headers=(("List-Unsubscribe", "<mailto:leave@shop.example>"),))  # fmt: skip
    response = deliver(email_client, "sendgrid", mail)
    assert response.get_json()["automatic"] == "mailing list (List-Unsubscribe: <mailto:leave@shop.example>)"
    assert count_tickets(email_app) == 0


@both_backends
def test_our_own_mail_coming_back_is_dropped(email_app: Flask, email_client, broker) -> None:
    """An address that forwards to our inbox sends our acknowledgement back: answering it would start a loop."""
    ticket_id, reference = open_ticket(email_app)
    mail = reply(sender=SUPPORT, message_id=OUR_ACK, in_reply_to=None, references=None,
                 subject=f"{reference_tag(reference)} 受付のお知らせ")  # fmt: skip
    response = deliver(email_client, "postmark", mail)
    answer = {"id": None, "duplicate": False, "automatic": "our own acknowledgement mail came back"}
    assert response.get_json() == answer
    assert count_tickets(email_app) == 1
    assert len(conversation(email_app, ticket_id)) == 1
    assert queued_ticket_ids(broker) == []


@both_backends
def test_a_reply_to_the_customers_own_first_mail_threads(email_app: Flask, email_client, broker) -> None:
    """The first mail's Message-ID is kept only as its dedupe key; a follow-up naming it still finds the ticket."""
    first = reply(in_reply_to=None, references=None, subject="二重請求について", body="二重に請求されています。")
    created = deliver(email_client, "raw", first).get_json()
    follow = reply(in_reply_to=first.message_id, references=first.message_id, subject="Re: 二重請求について",
                   body="明細を添付します。")  # fmt: skip
    response = deliver(email_client, "raw", follow)
    assert response.get_json() == {"id": created["id"], "duplicate": False, "threaded": True}
    assert queued_ticket_ids(broker) == [created["id"]]


@both_backends
def test_hostile_ids_are_not_looked_up(email_app: Flask, email_client, broker) -> None:
    """NUL, lone surrogates and absurd lengths in the ids: no lookup may fail the mail (PostgreSQL refuses NUL)."""
    ticket_id, _ = open_ticket(email_app)
    bad = "<a\x00b@x> <\ud800@x> <" + "x" * 2000 + "@x>"
    mail = reply(message_id="<\x00own@x>", in_reply_to=bad, references=bad + " " + OUR_ACK)
    response = deliver(email_client, "postmark", mail)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"id": str(ticket_id), "duplicate": False, "threaded": True}
    [_, entry] = conversation(email_app, ticket_id)
    assert "\x00" not in (entry.message_id or "")
