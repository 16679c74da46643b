"""worker.retry: the backoff the README promises (1, 2, 4, 8 s; the fifth failed attempt gives up)."""

from __future__ import annotations

from worker.retry import MAX_ATTEMPTS, Retry, after_failure


def test_retries_wait_one_two_four_eight_seconds() -> None:
    assert [after_failure(attempt) for attempt in range(4)] == [
        Retry(attempt=1, countdown=1.0), Retry(attempt=2, countdown=2.0),
        Retry(attempt=3, countdown=4.0), Retry(attempt=4, countdown=8.0),
    ]


def test_the_fifth_failed_attempt_gives_up() -> None:
    assert MAX_ATTEMPTS == 5
    assert after_failure(4) is None
    assert after_failure(9) is None  # a message that somehow went further still gives up


def test_a_whole_ticket_life_is_five_attempts_and_fifteen_seconds_of_waiting() -> None:
    attempt, waited, tries = 0, 0.0, 1
    while (step := after_failure(attempt)) is not None:
        attempt, waited, tries = step.attempt, waited + step.countdown, tries + 1
    assert (tries, waited) == (5, 15.0)


def test_a_negative_attempt_counts_as_the_first() -> None:
    assert after_failure(-3) == Retry(attempt=1, countdown=1.0)
