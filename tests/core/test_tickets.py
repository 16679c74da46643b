"""core.tickets against real SQLite and PostgreSQL (and a real Redis broker): idempotency, races, enqueue order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

import core.tickets
from core.config import Settings
from core.db import make_engine, make_session_factory
from core.messaging import CLASSIFY_QUEUE
from core.orm import Ticket
from core.runtime import Runtime
from core.tickets import IdempotencyKeyReused, NewTicket, _mark_received, create_ticket, list_tickets, submit_ticket

DEAD_BROKER_URL = "redis://127.0.0.1:6390/0"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str) -> str:
    return str(request.getfixturevalue(f"{backend}_url"))


@pytest.fixture
def runtime_for(make_settings: Callable[..., Settings], database_url: str) -> Iterator[Callable[[str], Runtime]]:
    """A Runtime on the test database whose Celery app publishes to the given broker."""
    built: list[Runtime] = []

    def build(broker_url: str) -> Runtime:
        built.append(Runtime.build(make_settings(database_url=database_url, broker_url=broker_url)))
        return built[-1]

    yield build
    for runtime in built:
        runtime.dispose()


@pytest.fixture
def factory(runtime_for: Callable[[str], Runtime]) -> sessionmaker[Session]:
    return runtime_for(DEAD_BROKER_URL).sessions


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)


def test_create_ticket_adds_a_received_ticket(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        new = NewTicket(channel="api", body="ログインできません", subject="ログイン")
        ticket, created = create_ticket(session, new)
    assert created
    assert ticket.status == "received" and ticket.attempts == 0 and ticket.queued_at is None
    assert len(ticket.reference) == 10 and ticket.reference.startswith("T-")
    assert _count(factory) == 1


# A client's retry repeats its request; a mail server's redelivery is the same mail whatever the webhook extracted.
@pytest.mark.parametrize(("key", "body_again"), [("idempotency_key", "一通目"), ("message_id", "再送")])
def test_a_repeated_key_returns_the_first_ticket(factory: sessionmaker[Session], key: str, body_again: str) -> None:
    with factory.begin() as session:
        first, created_first = create_ticket(
            session, NewTicket(channel="email", body="一通目", **{key: "<abc@example.jp>"})
        )
    with factory.begin() as session:
        again, created_again = create_ticket(
            session, NewTicket(channel="email", body=body_again, **{key: "<abc@example.jp>"})
        )
    assert (created_first, created_again) == (True, False)
    assert again.id == first.id and again.body == "一通目"
    assert _count(factory) == 1


@pytest.mark.parametrize("changed", [{"body": "別の質問"}, {"subject": "件名"}, {"customer_name": "花子"},
                                     {"customer_email": "b@example.jp"}, {"channel": "web"}])  # fmt: skip
def test_an_idempotency_key_reused_for_another_request_is_refused(factory: sessionmaker[Session], changed) -> None:
    original = {"channel": "api", "body": "質問", "customer_email": "a@example.jp"}
    with factory.begin() as session:
        create_ticket(session, NewTicket(**original, idempotency_key="k-1"))
    with pytest.raises(IdempotencyKeyReused) as refused, factory.begin() as session:
        create_ticket(session, NewTicket(**{**original, **changed}, idempotency_key="k-1"))
    assert refused.value.key == "k-1"
    assert _count(factory) == 1


def test_the_loser_of_a_race_gets_the_winners_ticket(factory: sessionmaker[Session], monkeypatch) -> None:
    """Both requests pass the look-up before either has committed; the unique constraint decides.

    The look-up is forced to miss once to pin that interleaving on every backend; the INSERT, the IntegrityError,
    the savepoint rollback and the re-read are all real. The loser's transaction must stay usable."""
    with factory.begin() as session:
        winner, _ = create_ticket(session, NewTicket(channel="api", body="先", idempotency_key="race-1"))

    real_lookup = core.tickets._find_duplicate
    misses_left = 1

    def lookup_that_misses_once(session: Session, idempotency_key: str | None, message_id: str | None):
        nonlocal misses_left
        if idempotency_key == "race-1" and misses_left:
            misses_left -= 1
            return None
        return real_lookup(session, idempotency_key, message_id)

    monkeypatch.setattr(core.tickets, "_find_duplicate", lookup_that_misses_once)
    with factory.begin() as session:
        # earlier work in the transaction
        _other, created_other = create_ticket(session, NewTicket(channel="api", body="別件"))
        loser, created = create_ticket(session, NewTicket(channel="api", body="先", idempotency_key="race-1"))
        assert misses_left == 0
        assert (created_other, created) == (True, False)
        assert loser.id == winner.id
    assert _count(factory) == 2  # the winner and the other ticket, no duplicate


def test_the_loser_of_a_race_with_another_request_is_refused(factory: sessionmaker[Session], monkeypatch) -> None:
    """The race as above, the loser carrying different text under the winner's key: refused, not merged."""
    with factory.begin() as session:
        create_ticket(session, NewTicket(channel="api", body="先", idempotency_key="race-3"))
    real_lookup = core.tickets._find_duplicate
    misses_left = 1

    def lookup_that_misses_once(session: Session, idempotency_key: str | None, message_id: str | None):
        nonlocal misses_left
        if misses_left:
            misses_left -= 1
            return None
        return real_lookup(session, idempotency_key, message_id)

    monkeypatch.setattr(core.tickets, "_find_duplicate", lookup_that_misses_once)
    with pytest.raises(IdempotencyKeyReused), factory.begin() as session:
        create_ticket(session, NewTicket(channel="api", body="後", idempotency_key="race-3"))
    assert misses_left == 0 and _count(factory) == 1


def test_concurrent_inserts_of_one_key_store_one_ticket(postgres_url: str) -> None:
    """Truly concurrent on PostgreSQL: the second INSERT waits on the first transaction's unique index entry."""
    engine = make_engine(postgres_url)
    factory = make_session_factory(engine)
    results: list[tuple[Ticket, bool]] = []
    first = factory()
    try:
        first.begin()
        winner, _ = create_ticket(first, NewTicket(channel="api", body="先", idempotency_key="race-2"))
        first.flush()
        thread = threading.Thread(target=lambda: results.append(_create_in_own_session(factory, "race-2")))
        thread.start()
        time.sleep(0.5)  # the second session has looked up (nothing committed yet) and now blocks on its INSERT
        assert thread.is_alive()
        first.commit()
        thread.join(timeout=10)
    finally:
        first.close()
    [(loser, created)] = results
    assert not created and loser.id == winner.id
    assert _count(factory) == 1
    engine.dispose()


def _create_in_own_session(factory: sessionmaker[Session], key: str) -> tuple[Ticket, bool]:
    with factory.begin() as session:
        return create_ticket(session, NewTicket(channel="api", body="先", idempotency_key=key))


def test_submit_commits_enqueues_then_marks_queued(factory, runtime_for, redis_url: str) -> None:
    broker = redis.Redis.from_url(redis_url)
    ticket, created = submit_ticket(runtime_for(redis_url), NewTicket(channel="api", body="返金してください"))
    assert created and ticket.status == "queued" and ticket.queued_at is not None
    with factory() as session:
        stored = session.get(Ticket, ticket.id)
        assert stored is not None and (stored.status, stored.queued_at) == ("queued", ticket.queued_at)
    assert broker.llen(CLASSIFY_QUEUE) == 1


def test_submit_returns_the_ticket_as_stored(factory, runtime_for, redis_url: str) -> None:
    """Without a key the ticket is INSERTed by a Core statement and the ticket returned is built from the same
    values, not read back: every column must match the row."""
    ticket, created = submit_ticket(
        runtime_for(redis_url), NewTicket(channel="web", body="請求書", subject="件名", customer_email="a@example.jp")
    )
    assert created and ticket.created_at == ticket.queued_at
    with factory() as session:
        stored = session.get(Ticket, ticket.id)
        assert stored is not None
        columns = [column.key for column in Ticket.__table__.columns]
        assert {key: getattr(stored, key) for key in columns} == {key: getattr(ticket, key) for key in columns}
    assert (stored.channel, stored.status, stored.attempts, stored.customer_name) == ("web", "queued", 0, None)


@pytest.mark.parametrize("key", ["idempotency_key", "message_id"])
def test_submit_with_a_key_stores_it_queued(factory, runtime_for, redis_url: str, key: str) -> None:
    ticket, created = submit_ticket(runtime_for(redis_url), NewTicket(channel="email", body="再送", **{key: "<m@x>"}))
    assert created and ticket.status == "queued" and ticket.created_at == ticket.queued_at
    with factory() as session:
        stored = session.get(Ticket, ticket.id)
        assert stored is not None and getattr(stored, key) == "<m@x>"
        assert (stored.status, stored.created_at, stored.queued_at) == ("queued", ticket.created_at, ticket.queued_at)
    assert redis.Redis.from_url(redis_url).llen(CLASSIFY_QUEUE) == 1


def test_submit_of_a_repeat_does_not_enqueue_again(factory, runtime_for, redis_url: str) -> None:
    broker = redis.Redis.from_url(redis_url)
    runtime = runtime_for(redis_url)
    first, _ = submit_ticket(runtime, NewTicket(channel="api", body="質問", idempotency_key="k"))
    again, created = submit_ticket(runtime, NewTicket(channel="api", body="質問", idempotency_key="k"))
    assert not created and again.id == first.id and again.status == "queued"
    assert broker.llen(CLASSIFY_QUEUE) == 1 and _count(factory) == 1


def test_submit_with_the_broker_down_keeps_the_ticket_received(factory, runtime_for, caplog) -> None:
    ticket, created = submit_ticket(runtime_for(DEAD_BROKER_URL), NewTicket(channel="web", body="カードが使えません"))
    assert created and ticket.status == "received"
    with factory() as session:
        stored = session.get(Ticket, ticket.id)
        assert stored is not None and (stored.status, stored.queued_at) == ("received", None)
    assert "the sweep will retry" in caplog.text


def test_mark_received_leaves_a_ticket_the_worker_already_routed(factory: sessionmaker[Session], runtime_for) -> None:
    """A publish error may be reported after a worker already routed the ticket (the message did go out);
    the worker's result must win over the reset to `received`."""
    with factory.begin() as session:
        ticket, _ = create_ticket(session, NewTicket(channel="api", body="早い"))
    with factory.begin() as session:
        session.execute(update(Ticket).where(Ticket.id == ticket.id).values(status="routed", route="Other"))
    fresh = _mark_received(runtime_for(DEAD_BROKER_URL), ticket)
    assert (fresh.status, fresh.route) == ("routed", "Other")


def test_list_tickets_pages_oldest_first(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        tickets = [create_ticket(session, NewTicket(channel="api", body=f"質問 {n}"))[0] for n in range(3)]
    ids = [ticket.id for ticket in sorted(tickets, key=lambda t: (t.created_at, t.id.hex))]
    seen = []
    after = None
    with factory() as session:
        while True:
            page, after = list_tickets(session, after=after, limit=2)
            seen += [ticket.id for ticket in page]
            if after is None:
                break
    assert seen == ids
