"""Suggested replies (core.suggestions) and the fine categories (core.categories) on a tiny corpus written by the
test, and on a real SQLite database for the agents' sent replies and the champion's category list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core import suggestions
from core.categories import Catalog, catalog, corpus_path, corpus_rows, fine_categories
from core.db import make_engine, make_session_factory
from core.orm import Message, ModelVersion, Ticket
from core.routes import RouteMap
from tests.support.tiny_corpus import BILLING_JA, PASSWORD_EN, PASSWORD_JA, REFUND_JA, write_corpus

ROUTE_MAP = RouteMap.load()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path)


@pytest.fixture
def index(corpus: Path) -> suggestions.CorpusIndex:
    return suggestions.CorpusIndex(corpus_rows(corpus))


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def test_the_corpus_is_read_as_written_quotes_and_line_breaks_included(corpus: Path) -> None:
    rows = {row.id: row for row in corpus_rows(corpus)}
    assert rows["E2"].question == 'Please refund my order, I was "charged" twice'
    assert rows["P2"].question == "今月の請求額が間違っています\n明細を見てください"
    assert rows["S1"].category == "Spam" and rows["S1"].answer == ""


def test_the_nearest_answer_of_the_tickets_category_ranks_first(index: suggestions.CorpusIndex) -> None:
    found = suggestions.rank("パスワード再設定のメールが届かないのですが", ["Account - Password"], index)
    assert found[0].text == PASSWORD_JA
    assert {s.category for s in found} == {"Account - Password"}
    assert all(0 < s.similarity <= 1 for s in found)
    assert [s.similarity for s in found] == sorted((s.similarity for s in found), reverse=True)
    assert found[0].source == "corpus" and found[0].reference == "A1" and found[0].language == "ja"


def test_the_category_decides_over_mere_likeness(index: suggestions.CorpusIndex) -> None:
    question = "今月の請求が二重です。返金してください"
    assert suggestions.rank(question, ["Payment - Billing"], index)[0].text == BILLING_JA
    assert suggestions.rank(question, ["Payment - Refund"], index)[0].text == REFUND_JA
    everywhere = suggestions.rank(question, None, index, limit=10)
    assert {REFUND_JA, BILLING_JA} <= {s.text for s in everywhere}


def test_an_english_ticket_gets_the_english_answer_first(index: suggestions.CorpusIndex) -> None:
    found = suggestions.rank("my password reset email did not arrive", ["Account - Password"], index)
    assert found[0].text == PASSWORD_EN and found[0].language == "en"


def test_an_answerless_row_is_never_suggested_and_an_empty_text_gets_nothing(index: suggestions.CorpusIndex) -> None:
    assert suggestions.rank("格安SEOのご案内", ["Spam"], index) == []
    assert suggestions.rank("   ", None, index) == []


def test_a_ticket_without_a_category_searches_its_routes_categories() -> None:
    known = Catalog({"Account - Password": "Account", "Payment - Refund": "Payment", "Payment - Billing": "Payment"})
    assert suggestions.scope("Payment - Refund", "Account", known) == ["Payment - Refund"]
    assert suggestions.scope(None, "Payment", known) == ["Payment - Refund", "Payment - Billing"]
    assert suggestions.scope(None, None, known) is None
    assert suggestions.scope(None, "Other", known) is None  # no category folds into Other here: all of them


def _ticket(session: Session, body: str, category: str | None, route: str | None = "Payment") -> Ticket:
    ticket = Ticket(channel="email", body=body, status="routed", route=route, fine_category=category,
                    customer_email="taro@example.jp")
    session.add(ticket)
    session.flush()
    return ticket


def _reply(session: Session, ticket: Ticket, body: str, delivery: str = "sent") -> None:
    session.add(Message(ticket_id=ticket.id, kind="agent_reply", channel="email", body=body, delivery=delivery,
                        recipient=ticket.customer_email))
    session.flush()


def test_agents_sent_replies_become_candidates(session: Session, corpus: Path) -> None:
    answered = _ticket(session, "注文番号1234を二重に支払ってしまいました。返金をお願いします", "Payment - Refund")
    _reply(session, answered, "ご返金の手続きを完了しました。5営業日以内に戻ります。")
    _reply(session, answered, "まだ送られていない返信です。", delivery="pending")
    other = _ticket(session, "二重に支払ってしまいました。返金をお願いします", "Payment - Billing")
    _reply(session, other, "請求の件、担当から連絡します。")
    ticket = _ticket(session, "二重に支払ってしまったので返金をお願いします", "Payment - Refund")
    _reply(session, ticket, "この返信は自分のチケットのもの。")

    found = suggestions.for_ticket(session, ticket, corpus, ROUTE_MAP)
    replies = [s for s in found if s.source == "agent_reply"]
    assert [(s.text, s.reference, s.category) for s in replies] == [
        ("ご返金の手続きを完了しました。5営業日以内に戻ります。", answered.reference, "Payment - Refund")]
    assert replies[0].similarity > 0.5
    assert found[0] == replies[0]  # a closer question than the corpus row's
    assert {s.category for s in found} == {"Payment - Refund"}


def test_without_a_category_the_routes_answers_are_searched(session: Session, corpus: Path) -> None:
    ticket = _ticket(session, "今月の請求が二重です。返金してください", None, route="Payment")
    found = suggestions.for_ticket(session, ticket, corpus, ROUTE_MAP)
    assert {s.category for s in found} == {"Payment - Refund", "Payment - Billing"}
    assert {found[0].text, found[1].text} == {REFUND_JA, BILLING_JA}  # Japanese first, the English one after


def test_fine_categories_are_the_champions_else_the_corpus(session: Session, corpus: Path) -> None:
    assert fine_categories(session, corpus) == [
        "Account - Login", "Account - Password", "Payment - Billing", "Payment - Refund", "Spam"]
    session.add(ModelVersion(version="v1", status="champion", trigger="initial",
                             train_counts={"categories": ["Spam", "Bug", "Payment - Refund"]}))
    session.flush()
    assert fine_categories(session, corpus) == ["Bug", "Payment - Refund", "Spam"]
    known = catalog(session, corpus, ROUTE_MAP)
    assert known.routes == {"Bug": "Other", "Payment - Refund": "Payment", "Spam": "Other"}
    assert known.by_route() == {"Other": ["Bug", "Spam"], "Payment": ["Payment - Refund"]}


def test_a_champion_without_categories_falls_back_to_the_corpus(session: Session, corpus: Path) -> None:
    session.add(ModelVersion(version="v0", status="champion", trigger="initial", train_counts={"by_route": {}}))
    session.flush()
    assert "Account - Password" in fine_categories(session, corpus)


def test_an_unreadable_or_csv_corpus(tmp_path: Path) -> None:
    assert corpus_rows(tmp_path / "missing.tsv") == ()
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("text\tlabel\nhello\tgreeting\n", encoding="utf-8")
    assert corpus_rows(wrong) == ()
    assert corpus_path(tmp_path / "banking77.csv") == corpus_path(None)  # no answers in a CSV import
    assert corpus_path(wrong) == wrong
