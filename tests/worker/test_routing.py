"""worker.routing's service functions and the classify task's batch (worker.classify_tasks.route_batch) against real
databases and a real trained model."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from core.artifacts import resolve
from core.orm import Ticket, utcnow
from core.runtime import Runtime


@pytest.fixture(scope="module")
def predictor(trained_model_dir):
    from serving.predictor import Predictor

    return Predictor(resolve(None, trained_model_dir))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def runtime(request, make_settings):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    runtime = Runtime.build(make_settings(database_url=url))
    yield runtime
    runtime.dispose()


@pytest.fixture
def sessions(runtime):
    return runtime.sessions


def _add(sessions, body: str, status: str = "queued", **fields) -> str:
    with sessions() as s, s.begin():
        ticket = Ticket(channel="api", body=body, status=status, **fields)
        s.add(ticket)
    return str(ticket.id)


def test_routes_a_batch_and_writes_everything_in_one_go(runtime, sessions, predictor):
    from worker.classify_tasks import route_batch

    ids = [_add(sessions, "パスワードを忘れてログインできません"), _add(sessions, "二重に請求されています。返金して")]
    outcome = route_batch(runtime, predictor, ids, {"Account": 0.0, "Payment": 0.0, "Other": 0.0})
    assert sorted(outcome.routed) == sorted(ids)
    with sessions() as s:
        first, second = (s.get(Ticket, uuid.UUID(i)) for i in ids)
    assert (first.route, second.route) == ("Account", "Payment")
    for t in (first, second):
        assert t.status == "routed" and t.model_version == predictor.version and t.attempts == 1
        assert t.routed_at is not None and t.routed_at.tzinfo is not None
        assert t.score_account + t.score_payment + t.score_other == pytest.approx(1.0, abs=1e-4)
        assert t.confidence == pytest.approx(max(t.scores.values()))
        # The fine category from the same model call, one of the trained labels, beside the route it refines.
        assert t.fine_category in predictor.categories and t.fine_category.startswith(f"{t.route} - ")
        assert 1 / len(predictor.categories) < t.fine_confidence <= 1.0


def test_already_routed_ticket_is_left_alone(runtime, sessions, predictor):
    from worker.classify_tasks import route_batch

    ticket_id = _add(sessions, "カードが使えません")
    route_batch(runtime, predictor, [ticket_id], {})
    with sessions() as s, s.begin():
        s.execute(update(Ticket).values(route="Other", confidence=0.5))  # an agent's later change
    outcome = route_batch(runtime, predictor, [ticket_id, ticket_id], {})
    assert outcome.skipped == [ticket_id, ticket_id] and not outcome.routed
    with sessions() as s:
        ticket = s.get(Ticket, uuid.UUID(ticket_id))
    assert ticket.route == "Other" and ticket.attempts == 1


def test_below_threshold_goes_to_review_with_its_route_kept(runtime, sessions, predictor):
    from worker.classify_tasks import route_batch

    ticket_id = _add(sessions, "パスワードを忘れてログインできません")
    outcome = route_batch(runtime, predictor, [ticket_id], {"Account": 1.0, "Payment": 1.0, "Other": 1.0})
    assert outcome.needs_review == [ticket_id]
    with sessions() as s:
        ticket = s.get(Ticket, uuid.UUID(ticket_id))
    assert ticket.status == "needs_review" and ticket.route == "Account"
    assert ticket.review_reason == "low_confidence"
    assert ticket.fine_category in predictor.categories  # kept for review too, like the route


def test_a_ticket_unlike_the_training_rows_needs_review_whatever_the_thresholds(runtime, sessions, predictor):
    """Text in a script the corpus never used: its n-grams are unknown to the linear arm, so the thresholds, measured
    on rows like the corpus's, say nothing about it (Prediction.familiar); a corpus-like ticket beside it routes."""
    from worker.classify_tasks import route_batch

    foreign = _add(sessions, "Здравствуйте, не могу войти в личный кабинет после смены телефона")
    familiar = _add(sessions, "パスワードを忘れてログインできません")
    outcome = route_batch(runtime, predictor, [foreign, familiar], {"Account": 0.0, "Payment": 0.0, "Other": 0.0})
    assert outcome.needs_review == [foreign] and outcome.routed == [familiar]
    with sessions() as s:
        ticket, other = s.get(Ticket, uuid.UUID(foreign)), s.get(Ticket, uuid.UUID(familiar))
    assert ticket.status == "needs_review" and ticket.route in predictor.labels and ticket.model_version
    assert (ticket.review_reason, other.review_reason) == ("unfamiliar_text", None)


def test_text_with_nothing_left_after_cleanup_needs_review(runtime, sessions, predictor):
    from worker.classify_tasks import route_batch

    ticket_id = _add(sessions, "-----\nhttps://example.com\n> quoted only")
    outcome = route_batch(runtime, predictor, [ticket_id], {})
    assert outcome.needs_review == [ticket_id]
    with sessions() as s:
        assert s.get(Ticket, uuid.UUID(ticket_id)).review_reason == "no_text"


def test_invalid_and_unknown_ids_are_skipped(runtime, predictor):
    from worker.classify_tasks import route_batch

    outcome = route_batch(runtime, predictor, ["not-a-uuid", "6f1c8a52-0000-4000-8000-000000000000"], {})
    assert outcome.routed == [] and outcome.skipped == ["6f1c8a52-0000-4000-8000-000000000000"]


def test_mark_failed_keeps_the_error(runtime, sessions):
    from worker.routing import mark_failed

    ticket_id = _add(sessions, "help")
    with runtime.unit_of_work() as session:
        mark_failed(session, [ticket_id], "database error: x" * 500)
    with sessions() as s:
        ticket = s.get(Ticket, uuid.UUID(ticket_id))
    assert ticket.status == "failed" and ticket.last_error.startswith("database error") and ticket.attempts == 1
    assert len(ticket.last_error) <= 2000


def test_stale_tickets_are_found_and_requeued(runtime, sessions):
    from worker.routing import mark_queued, stale_ticket_ids

    old = _add(sessions, "old", status="received", created_at=utcnow() - timedelta(minutes=10))
    _add(sessions, "fresh", status="received")
    _add(sessions, "done", status="routed", created_at=utcnow() - timedelta(minutes=10))
    with sessions() as session:
        assert stale_ticket_ids(session, older_than_seconds=60) == [old]
    with runtime.unit_of_work() as session:
        mark_queued(session, [old])
    with sessions() as session:
        assert stale_ticket_ids(session, older_than_seconds=60) == []


def test_service_functions_leave_the_commit_to_the_caller(sessions, predictor):
    from worker.routing import mark_failed, mark_queued, pending_tickets, plan_routes, write_routes

    ticket_id = _add(sessions, "パスワードを忘れてログインできません", status="received")
    for change in (
        lambda s: write_routes(s, plan_routes(predictor, pending_tickets(s, [ticket_id]), {})),
        lambda s: mark_failed(s, [ticket_id], "database error"),
        lambda s: mark_queued(s, [ticket_id]),
    ):
        with sessions() as session:
            change(session)
            session.rollback()  # the caller's unit of work ends without a commit
        with sessions() as session:
            ticket = session.get(Ticket, uuid.UUID(ticket_id))
            assert (ticket.status, ticket.route, ticket.attempts) == ("received", None, 0)


def test_a_batch_of_tickets_no_longer_pending_writes_nothing(runtime, sessions, predictor):
    from worker.classify_tasks import route_batch

    ticket_id = _add(sessions, "カードが使えません", status="routed", route="Other")
    outcome = route_batch(runtime, predictor, [ticket_id], {})
    assert outcome.skipped == [ticket_id] and not outcome.routed and not outcome.needs_review
    with sessions() as s:
        ticket = s.get(Ticket, uuid.UUID(ticket_id))
    assert (ticket.status, ticket.route, ticket.attempts) == ("routed", "Other", 0)


def test_without_a_model_tickets_wait_pending_and_are_not_failed(runtime, sessions, tmp_path):
    """A worker started before any model exists (or with its MODEL_DIR gone) leaves tickets pending for the sweep;
    it neither fails them nor spends their retries."""
    from celery_batches import SimpleRequest

    from worker import classify_tasks, context
    from worker.current_model import CurrentModel

    ticket_id = _add(sessions, "パスワードを忘れました")
    request = SimpleRequest(str(uuid.uuid4()), classify_tasks.CLASSIFY_TASK, (ticket_id,), {"attempt": 4}, {},
                            "test", True, None, None, None)
    context.install(context.WorkerContext(runtime, CurrentModel(tmp_path / "no-models-here")))
    try:
        classify_tasks.classify_ticket.run([request])
    finally:
        context.install(None)  # type: ignore[arg-type]
    with sessions() as s:
        ticket = s.get(Ticket, uuid.UUID(ticket_id))
    assert ticket.status == "queued" and ticket.attempts == 0 and ticket.last_error is None
