"""worker.retry: the backoff the README promises (1, 2, 4, 8, 16 s, then 30 s; about five minutes in all)."""

from __future__ import annotations

from worker import retry
from worker.retry import MAX_ATTEMPTS, Retry, after_failure


def test_retries_back_off_exponentially_then_every_thirty_seconds() -> None:
    assert [after_failure(attempt) for attempt in range(7)] == [
        Retry(attempt=1, countdown=1.0), Retry(attempt=2, countdown=2.0), Retry(attempt=3, countdown=4.0),
        Retry(attempt=4, countdown=8.0), Retry(attempt=5, countdown=16.0), Retry(attempt=6, countdown=30.0),
        Retry(attempt=7, countdown=30.0),
    ]


def test_the_fifteenth_failed_attempt_gives_up() -> None:
    assert MAX_ATTEMPTS == 15
    assert after_failure(13) == Retry(attempt=14, countdown=30.0)
    assert after_failure(14) is None
    assert after_failure(40) is None  # a message that somehow went further still gives up


def test_a_ticket_outlasts_a_database_outage_of_five_minutes_before_it_fails() -> None:
    attempt, waited, tries = 0, 0.0, 1
    while (step := after_failure(attempt)) is not None:
        attempt, waited, tries = step.attempt, waited + step.countdown, tries + 1
    assert (tries, waited) == (15, 301.0)


def test_a_negative_attempt_counts_as_the_first() -> None:
    assert after_failure(-3) == Retry(attempt=1, countdown=1.0)


def test_a_lost_worker_process_is_retried_at_once_and_given_up_after_the_third_loss():
    first = retry.after_worker_lost(0)
    assert first is not None and first.countdown == retry.WORKER_LOST_DELAY_SECONDS
    second = retry.after_worker_lost(first.attempt)
    assert second is not None
    assert retry.after_worker_lost(second.attempt) is None
