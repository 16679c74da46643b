"""When a ticket whose routing failed is tried again, and when the worker gives up on it.

The README's promise: database errors are retried with exponential backoff (1, 2, 4, 8 s), and after the fifth
attempt the ticket is `failed` with the error kept. A plain function, so the policy is read and tested in one place
while the classify task only follows it.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ATTEMPTS = 5  # the first try and four retries
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 60.0


@dataclass(frozen=True)
class Retry:
    """Send the ticket again as attempt `attempt` (0 is the first try) after `countdown` seconds."""

    attempt: int
    countdown: float


def after_failure(failed_attempt: int) -> Retry | None:
    """What follows the failure of attempt `failed_attempt` (0-based): the retry to send, or None to give up.

    Attempts 0, 1, 2, 3 are followed by retries 1, 2, 3, 4 after 1, 2, 4, 8 s; the failure of attempt 4, the
    fifth, gives up. A negative number (a message from an unknown sender) counts as the first try.
    """
    failed_attempt = max(0, failed_attempt)
    next_attempt = failed_attempt + 1
    if next_attempt >= MAX_ATTEMPTS:
        return None
    return Retry(next_attempt, min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2**failed_attempt))
