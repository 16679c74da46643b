"""core.conversations on real SQLite and PostgreSQL: which ticket a mail continues, replies, reopening, bounces."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.conversations import (
    add_automatic,
    add_customer_reply,
    candidate_ids,
    entries,
    mark_bounced,
    reference_tag,
    tagged_reference,
    thread_target,
)
from core.db import make_engine, make_session_factory
from core.orm import Message, Ticket, TicketEvent, utcnow
from tests.support.backends import both_backends

CUSTOMER = "taro.yamada@example.jp"


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def ticket(session: Session, *, email: str | None = CUSTOMER, status: str = "routed", route: str | None = "Payment",
           message_id: str | None = None) -> Ticket:  # fmt: skip
    stored = Ticket(channel="email", body="二重に請求されています", subject="二重請求について", customer_email=email,
                    status=status, route=route, message_id=message_id)  # fmt: skip
    if status == "resolved":
        stored.resolved_at = utcnow()
    session.add(stored)
    session.flush()
    return stored


def sent(session: Session, owner: Ticket, message_id: str, kind: str = "acknowledgement") -> Message:
    message = Message(ticket_id=owner.id, kind=kind, channel="email", recipient=owner.customer_email,
                      subject=f"{reference_tag(owner.reference)} 受付のお知らせ", body="受け付けました",
                      message_id=message_id, delivery="sent")  # fmt: skip
    session.add(message)
    session.flush()
    return message


def target(session: Session, *, sender: str = CUSTOMER, in_reply_to: str | None = None, references: str | None = None,
           subject: str | None = "Re: お問い合わせ", keys: tuple[str, ...] = ()) -> Ticket | None:  # fmt: skip
    return thread_target(session, sender=sender, in_reply_to=in_reply_to, references=references, subject=subject,
                         ticket_keys=keys)  # fmt: skip


def test_tag_helpers_keep_their_contract() -> None:
    assert reference_tag("T-7KQ2M9XA") == "[T-7KQ2M9XA]"
    assert tagged_reference("返信: Re: [T-7KQ2M9XA] 二重請求") == "T-7KQ2M9XA"
    assert tagged_reference("転送: Fw: RE: [t-7kq2m9xa] [T-ABCDEFGH]") == "T-ABCDEFGH"
    assert tagged_reference("[T-7KQ2M9X0]") is None  # 0 is not in the reference alphabet
    assert tagged_reference(None) is None


def test_candidate_ids_in_reply_to_first_then_references_newest_first() -> None:
    assert candidate_ids("<c@x>", "<a@x> <b@x>\n <c@x>") == ["<c@x>", "<b@x>", "<a@x>"]
    assert candidate_ids(None, None) == []
    assert candidate_ids("not an id", "") == []


@both_backends
def test_a_reply_to_our_mail_threads_onto_its_ticket(session: Session) -> None:
    mine, other = ticket(session), ticket(session)
    sent(session, mine, "<ack-1@furiwake.test>")
    sent(session, other, "<ack-2@furiwake.test>")
    assert target(session, in_reply_to="<ack-1@furiwake.test>") is mine
    assert target(session, references="<unknown@x> <ack-1@furiwake.test>") is mine
    # In-Reply-To wins over References; among References the newest (last) wins.
    assert target(session, sender=CUSTOMER, in_reply_to="<ack-1@furiwake.test>",
                  references="<ack-2@furiwake.test>") is mine  # fmt: skip
    assert target(session, references="<ack-2@furiwake.test> <ack-1@furiwake.test>") is mine
    assert target(session, in_reply_to="<unknown@furiwake.test>") is None


@both_backends
def test_the_sender_must_be_the_tickets_customer(session: Session) -> None:
    mine = ticket(session)
    sent(session, mine, "<ack-1@furiwake.test>")
    assert target(session, sender="  Taro.Yamada@EXAMPLE.jp ", in_reply_to="<ack-1@furiwake.test>") is mine
    assert target(session, sender="hanako@example.jp", in_reply_to="<ack-1@furiwake.test>") is None
    tagged = f"返信: Re: {reference_tag(mine.reference)} 二重請求について"
    assert target(session, sender="hanako@example.jp", subject=tagged) is None
    # A mismatch on the id is not rescued by a tag naming another ticket of the same sender: a new ticket.
    hers = ticket(session, email="hanako@example.jp")
    assert target(session, sender="hanako@example.jp", in_reply_to="<ack-1@furiwake.test>",
                  subject=f"Re: {reference_tag(hers.reference)}") is None  # fmt: skip
    assert target(session, sender="hanako@example.jp", subject=f"Re: {reference_tag(hers.reference)}") is hers
    anonymous = ticket(session, email=None)
    assert target(session, sender=CUSTOMER, subject=reference_tag(anonymous.reference)) is None


@both_backends
def test_subject_tag_through_reply_and_forward_prefixes(session: Session) -> None:
    mine = ticket(session)
    tag = reference_tag(mine.reference)
    for subject in (f"Re: {tag} 二重請求", f"RE: RE: {tag}", f"返信: Re: {tag} 二重請求", f"転送: Fw: {tag}",
                    f"Re: {tag.lower()} 二重請求"):  # fmt: skip
        assert target(session, subject=subject) is mine, subject
    assert target(session, subject="Re: [T-ZZZZZZZZ] unknown") is None


@both_backends
def test_first_mail_keys_and_earlier_replies_thread_too(session: Session) -> None:
    mine = ticket(session, message_id="f" * 64)
    assert target(session, keys=("0" * 64, "f" * 64)) is mine
    reply = add_customer_reply(session, mine, body="追記です", sender=CUSTOMER, message_id="<reply-1@example.jp>")
    session.flush()
    assert target(session, in_reply_to=reply.message_id) is mine


@both_backends
def test_entries_in_order(session: Session) -> None:
    mine, other = ticket(session), ticket(session)
    now = utcnow()
    first = sent(session, mine, "<ack-1@furiwake.test>")
    first.created_at = now - timedelta(minutes=5)
    second = add_customer_reply(session, mine, body="ありがとうございます", sender=CUSTOMER)
    note = Message(ticket_id=mine.id, kind="note", channel="agent", body="返金済み", created_at=second.created_at)
    session.add(note)
    sent(session, other, "<ack-2@furiwake.test>")
    session.flush()
    assert [m.id for m in entries(session, mine.id)] == [first.id, second.id, note.id]
    assert entries(session, uuid.uuid4()) == []


@both_backends
def test_a_reply_reopens_a_resolved_ticket_and_keeps_its_route(session: Session) -> None:
    done = ticket(session, status="resolved")
    add_customer_reply(session, done, body="まだ解決していません", sender=CUSTOMER, message_id="<r1@example.jp>")
    session.flush()
    assert (done.status, done.route, done.resolved_at) == ("routed", "Payment", None)
    [event] = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == done.id))
    assert (event.kind, event.detail) == ("reopened", "customer replied by email")
    # A second reply on the now open ticket reopens nothing.
    add_customer_reply(session, done, body="追記", sender=CUSTOMER, message_id="<r2@example.jp>")
    session.flush()
    assert len(list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == done.id)))) == 1
    [first, second] = entries(session, done.id)
    assert (first.kind, first.channel, first.body, second.body) == ("customer", "email", "まだ解決していません", "追記")


@both_backends
def test_a_ticket_resolved_before_it_was_routed_reopens_for_review(session: Session) -> None:
    done = ticket(session, status="resolved", route=None)
    add_customer_reply(session, done, body="返事をください", sender=CUSTOMER)
    session.flush()
    assert (done.status, done.resolved_at) == ("needs_review", None)


@both_backends
def test_automatic_mail_is_kept_and_reopens_nothing(session: Session) -> None:
    done = ticket(session, status="resolved")
    message = add_automatic(session, done, "Auto-Submitted: auto-replied", body="5/6まで不在です", sender=CUSTOMER,
                            message_id="<ooo@example.jp>")  # fmt: skip
    session.flush()
    assert done.status == "resolved"
    assert (message.kind, message.automatic) == ("automatic", "Auto-Submitted: auto-replied")
    assert list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == done.id))) == []


@both_backends
def test_a_bounce_marks_our_mail_bounced(session: Session) -> None:
    mine = ticket(session)
    ack = sent(session, mine, "<ack-1@furiwake.test>")
    reply = sent(session, mine, "<reply-1@furiwake.test>", kind="agent_reply")
    inbound = add_customer_reply(session, mine, body="x", sender=CUSTOMER, message_id="<theirs@example.jp>")
    session.flush()
    assert mark_bounced(session, ["<theirs@example.jp>", "<nope@x>"], "550 user unknown") is None
    assert inbound.delivery is None  # only mail we sent can bounce
    assert mark_bounced(session, ["<nope@x>", "<reply-1@furiwake.test>", "<ack-1@furiwake.test>"], "550") is reply
    assert (reply.delivery, reply.last_error, ack.delivery) == ("bounced", "550", "sent")
    assert mark_bounced(session, [], "x") is None


@both_backends
def test_a_second_copy_of_one_mail_fails_in_its_savepoint_only(session: Session) -> None:
    mine = ticket(session)
    add_customer_reply(session, mine, body="一通目", sender=CUSTOMER, message_id="<same@example.jp>")
    session.flush()
    with pytest.raises(IntegrityError):
        add_customer_reply(session, mine, body="一通目", sender=CUSTOMER, message_id="<same@example.jp>")
    session.flush()  # the transaction is still usable
    assert [m.body for m in entries(session, mine.id)] == ["一通目"]
