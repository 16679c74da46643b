"""core.outbox on SQLite and PostgreSQL: replies and notes, the acknowledgement rules, claiming an attempt."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import outbox
from core.config import MailSettings, Settings, SmtpServer
from core.orm import JobLease, Message, Ticket, TicketEvent, utcnow
from core.runtime import Runtime
from core.tickets import NewTicket, store_queued
from tests.support.backends import BACKENDS

MAIL = MailSettings(smtp=SmtpServer("smtp", "127.0.0.1", 2525), mail_from="Support <support@example.jp>",
                    acknowledge_max_per_hour=2, public_url="https://support.example.jp")


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    built = Runtime.build(make_settings(database_url=url, mail=MAIL))
    yield built
    built.dispose()


def _ticket(runtime: Runtime, email: str | None = "hanako@example.com", channel: str = "email",
            body: str = "ログインできません") -> Ticket:
    with runtime.unit_of_work() as session:
        ticket, _created = store_queued(session, NewTicket(channel=channel, body=body, subject="ログイン",
                                                           customer_email=email))
    return ticket


def _acknowledge(runtime: Runtime, ticket: Ticket, mail: MailSettings = MAIL) -> Message | None:
    with runtime.unit_of_work() as session:
        return outbox.queue_acknowledgement(session, ticket, mail)


def test_a_reply_is_pending_mail_threaded_on_the_conversation(runtime: Runtime) -> None:
    ticket = _ticket(runtime)
    ack = _acknowledge(runtime, ticket)
    assert ack is not None
    with runtime.unit_of_work() as session:
        session.add(Message(ticket_id=ticket.id, kind="customer", channel="email", body="まだです",
                            message_id="<again@customer.example>", created_at=utcnow()))
    with runtime.unit_of_work() as session:
        reply = outbox.queue_reply(session, ticket, None, "再設定しました。", MAIL)
    assert reply.delivery == "pending" and reply.attempts == 0 and reply.language == "ja"
    assert reply.message_id is not None and reply.message_id.endswith("@example.jp>")
    assert reply.subject == f"Re: ログイン [{ticket.reference}]"
    assert reply.in_reply_to == "<again@customer.example>"
    assert reply.references == f"{ack.message_id} <again@customer.example>"
    with runtime.sessions() as session:
        assert session.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)).all() == ["replied"]


def test_the_first_reply_answers_the_customers_own_first_mail(runtime: Runtime) -> None:
    """tickets.message_id of an e-mail ticket is a dedupe key; mail_message_id is the id the customer's client
    knows, so our acknowledgement and first reply thread under their mail."""
    with runtime.unit_of_work() as session:
        new = NewTicket(channel="email", body="ログインできません", subject="ログイン",
                        customer_email="hanako@example.com", message_id="k" * 64,
                        mail_message_id="<first@customer.example>")
        ticket, _created = store_queued(session, new)
    ack = _acknowledge(runtime, ticket)
    assert ack is not None and ack.in_reply_to == "<first@customer.example>"
    with runtime.unit_of_work() as session:
        reply = outbox.queue_reply(session, ticket, None, "再設定しました。", MAIL)
    assert reply.in_reply_to == "<first@customer.example>"
    assert reply.references == f"<first@customer.example> {ack.message_id}"


def test_a_ticket_without_an_address_gets_no_reply_but_a_note(runtime: Runtime) -> None:
    ticket = _ticket(runtime, email=None)
    with runtime.unit_of_work() as session, pytest.raises(outbox.NoRecipient):
        outbox.queue_reply(session, ticket, None, "hello", MAIL)
    with runtime.unit_of_work() as session:
        note = outbox.add_note(session, ticket, None, "電話で連絡済み")
    assert note.kind == "note" and note.delivery is None and note.recipient is None


def test_a_ticket_is_acknowledged_once(runtime: Runtime) -> None:
    ticket = _ticket(runtime)
    first = _acknowledge(runtime, ticket)
    assert first is not None and first.kind == "acknowledgement" and first.delivery == "pending"
    assert first.recipient == "hanako@example.com" and first.language == "ja"
    assert _acknowledge(runtime, ticket) is None


@pytest.mark.parametrize("address", ["noreply@shop.example", "No-Reply@shop.example", "MAILER-DAEMON@mx.example",
                                     "postmaster@mx.example", "support@example.jp", "bounces+123@lists.example"])
def test_addresses_that_never_get_an_acknowledgement(runtime: Runtime, address: str) -> None:
    assert _acknowledge(runtime, _ticket(runtime, email=address)) is None


def test_acknowledgements_need_an_smtp_server_and_can_be_turned_off(runtime: Runtime) -> None:
    ticket = _ticket(runtime)
    assert _acknowledge(runtime, ticket, MailSettings(mail_from="s@example.jp")) is None
    assert _acknowledge(runtime, ticket, MailSettings(smtp=MAIL.smtp, mail_from="s@example.jp",
                                                      acknowledge=False)) is None
    assert _acknowledge(runtime, _ticket(runtime, channel="api")) is None  # API clients get their answer in JSON
    assert _acknowledge(runtime, ticket) is not None


def test_one_address_gets_at_most_n_acknowledgements_an_hour(runtime: Runtime) -> None:
    acknowledged = [_acknowledge(runtime, _ticket(runtime, email="Flood@Example.com")) for _ in range(4)]
    assert [message is not None for message in acknowledged] == [True, True, False, False]
    assert _acknowledge(runtime, _ticket(runtime, email="other@example.com")) is not None
    with runtime.unit_of_work() as session:  # an hour later the address is welcome again
        for message in session.scalars(select(Message).where(Message.recipient == "flood@example.com")):
            message.created_at = utcnow() - timedelta(hours=1, seconds=1)
    assert _acknowledge(runtime, _ticket(runtime, email="flood@example.com")) is not None


def test_an_attempt_is_claimed_once_and_the_next_waits_for_its_time(runtime: Runtime) -> None:
    policy = outbox.RetryPolicy(first=60, cap=600, give_up_after=3600)
    message = _acknowledge(runtime, _ticket(runtime))
    assert message is not None
    now = utcnow()
    with runtime.unit_of_work() as session:
        claimed = outbox.claim(session, message.id, policy, now)
        assert claimed is not None and claimed.attempts == 1
    with runtime.unit_of_work() as session:  # a duplicate task: attempt 2 is not due for 60 s
        assert outbox.claim(session, message.id, policy, now) is None
    assert policy.due_at(claimed) == claimed.created_at + timedelta(seconds=60)
    with runtime.sessions() as session:  # the sweep: not overdue yet, then overdue
        assert outbox.pending_ids(session, now - timedelta(seconds=60), policy, now) == []
        later = now + timedelta(seconds=121)
        assert outbox.pending_ids(session, later - timedelta(seconds=60), policy, later) == [message.id]
    with runtime.unit_of_work() as session:
        assert outbox.mark_sent(session, message.id)
        assert not outbox.mark_failed(session, message.id, "too late")  # sent stays sent
    with runtime.unit_of_work() as session:
        assert outbox.claim(session, message.id, policy, later) is None


def test_the_backoff_doubles_up_to_its_cap() -> None:
    policy = outbox.RetryPolicy(first=60, cap=1800, give_up_after=86400)
    assert [policy.delay(n) for n in range(0, 8)] == [0, 60, 120, 240, 480, 960, 1800, 1800]


def test_an_attempt_in_progress_keeps_others_out_however_late_the_schedule(runtime: Runtime) -> None:
    """No backoff at all (first=0): the lease alone keeps a duplicate task from sending while the first one talks
    to the server; recording the outcome frees the next attempt, and a crashed attempt's lease expires."""
    eager = outbox.RetryPolicy(first=0, cap=0, give_up_after=3600)
    message = _acknowledge(runtime, _ticket(runtime))
    assert message is not None
    now = utcnow()
    with runtime.unit_of_work() as session:
        assert outbox.claim(session, message.id, eager, now, lease_seconds=60) is not None
    with runtime.unit_of_work() as session:
        assert outbox.claim(session, message.id, eager, now, lease_seconds=60) is None  # held
    with runtime.unit_of_work() as session:
        outbox.note_error(session, message.id, "451 later")
    with runtime.unit_of_work() as session:
        again = outbox.claim(session, message.id, eager, now, lease_seconds=60)
        assert again is not None and again.attempts == 2
    with runtime.unit_of_work() as session:  # that attempt's process died: its lease expires after 60 s
        assert outbox.claim(session, message.id, eager, now + timedelta(seconds=30), lease_seconds=60) is None
        taken_over = outbox.claim(session, message.id, eager, now + timedelta(seconds=61), lease_seconds=60)
        assert taken_over is not None and taken_over.attempts == 3
    with runtime.unit_of_work() as session:
        assert outbox.mark_sent(session, message.id)
    with runtime.sessions() as session:
        assert session.scalars(select(JobLease.name).where(JobLease.name.like("mail:%"))).all() == []  # none left
