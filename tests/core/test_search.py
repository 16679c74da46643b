"""Search: by reference, by address, by words (Japanese included: no spaces between words), on both databases,
newest first and paged over every ticket; the trigram structures exist after migration and follow edits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import update

from core.config import Settings
from core.orm import Ticket
from core.runtime import Runtime
from core.search import Search, SearchError, customer_tickets, search_tickets
from core.tickets import NewTicket, store_queued
from tests.support.backends import BACKENDS

TEXTS = [
    ("先月のカード決済が二重になっています。返金してください。", "hanako@example.jp", "二重決済"),
    ("パスワードを忘れてログインできません", "taro@example.jp", "ログイン"),
    ("I was charged twice for my subscription, please refund", "Ann@Example.com", "Double charge"),
    ("How do I change my e-mail address? 50%_off coupon", "ann@example.com", None),
]


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    built = Runtime.build(make_settings(database_url=str(request.getfixturevalue(f"{request.param}_url"))))
    yield built
    built.dispose()


@pytest.fixture
def tickets(runtime: Runtime) -> list[Ticket]:
    made = []
    for body, email, subject in TEXTS:
        with runtime.unit_of_work() as session:
            ticket, _created = store_queued(session, NewTicket(channel="email", body=body, subject=subject,
                                                               customer_email=email))
        made.append(ticket)
    return made


def _found(runtime: Runtime, raw: str, **kwargs: object) -> list[str]:
    with runtime.sessions() as session:
        page, _more = search_tickets(session, Search.parse(raw), **kwargs)  # type: ignore[arg-type]
        return [ticket.body for ticket in page]


def test_japanese_words_inside_a_sentence(runtime: Runtime, tickets: list[Ticket]) -> None:
    assert _found(runtime, "返金してください") == [TEXTS[0][0]]  # trigram index (3+ characters)
    assert _found(runtime, "返金") == [TEXTS[0][0]]  # two characters: LIKE
    assert _found(runtime, "二重決済") == [TEXTS[0][0]]  # the subject
    assert _found(runtime, "ログイン　できません") == [TEXTS[1][0]]  # a full-width space separates words too
    assert _found(runtime, "返金 ログイン") == []  # every word must match


def test_english_is_case_insensitive_and_wildcards_are_literal(runtime: Runtime, tickets: list[Ticket]) -> None:
    assert _found(runtime, "REFUND") == [TEXTS[2][0]]
    assert _found(runtime, "charged twice") == [TEXTS[2][0]]
    assert _found(runtime, "50%_off") == [TEXTS[3][0]]
    assert _found(runtime, "%") == [TEXTS[3][0]]  # a literal percent sign, not "anything"
    assert _found(runtime, "0%x") == []


def test_by_reference_and_by_address(runtime: Runtime, tickets: list[Ticket]) -> None:
    assert _found(runtime, tickets[1].reference.lower()) == [TEXTS[1][0]]
    assert _found(runtime, f"[{tickets[1].reference}]") == [TEXTS[1][0]]
    assert _found(runtime, "ANN@example.com") == [TEXTS[3][0], TEXTS[2][0]]  # newest first
    assert _found(runtime, "@example.jp") == [TEXTS[1][0], TEXTS[0][0]]


def test_newest_first_paged_over_every_status(runtime: Runtime, tickets: list[Ticket]) -> None:
    with runtime.unit_of_work() as session:
        session.execute(update(Ticket).where(Ticket.id == tickets[2].id).values(status="resolved", route="Payment"))
    with runtime.sessions() as session:
        first, more = search_tickets(session, Search.parse("example"), limit=3)
        assert [t.id for t in first] == [t.id for t in reversed(tickets[1:])] and more is not None
        rest, end = search_tickets(session, Search.parse("example"), before=more, limit=3)
        assert [t.id for t in rest] == [tickets[0].id] and end is None
        only, _ = search_tickets(session, Search.parse("refund"), route="Payment")
        assert [t.status for t in only] == ["resolved"]


def test_the_index_follows_edits_and_deletes(runtime: Runtime, tickets: list[Ticket]) -> None:
    with runtime.unit_of_work() as session:
        session.execute(update(Ticket).where(Ticket.id == tickets[0].id).values(body="住所を変更したいです"))
        session.execute(sa.delete(Ticket).where(Ticket.id == tickets[1].id))
    assert _found(runtime, "返金してください") == []
    assert _found(runtime, "住所を変更") == ["住所を変更したいです"]
    assert _found(runtime, "ログインできません") == []


def test_a_customers_other_tickets(runtime: Runtime, tickets: list[Ticket]) -> None:
    with runtime.sessions() as session:
        assert [t.id for t in customer_tickets(session, tickets[2])] == [tickets[3].id]  # the address's case aside
        assert customer_tickets(session, tickets[0]) == []


@pytest.mark.parametrize("raw", ["", "   ", "x" * 201, " ".join(f"w{n}" for n in range(9))])
def test_a_search_that_cannot_run_says_why(raw: str) -> None:
    with pytest.raises(SearchError):
        Search.parse(raw)


def test_the_trigram_structures_exist_after_migration(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        if session.get_bind().dialect.name == "sqlite":
            names = set(session.scalars(sa.text("SELECT name FROM sqlite_master WHERE name LIKE 'tickets_fts%'")))
            assert {"tickets_fts", "tickets_fts_insert", "tickets_fts_update", "tickets_fts_delete"} <= names
        else:
            names = set(session.scalars(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'tickets'")))
            assert {"ix_tickets_subject_trgm", "ix_tickets_body_trgm", "ix_tickets_customer_email_trgm"} <= names
