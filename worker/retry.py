"""When a ticket whose routing failed is tried again, and when the worker gives up on it.

Database errors are retried with exponential backoff (1, 2, 4, 8, 16 s, then every 30 s) for about five minutes,
and after the fifteenth attempt the ticket is `failed` with the error kept. The budget is sized for an outage, not
for one bad query: a PostgreSQL restart, a failover or a minor-version upgrade takes seconds to a minute or two, and
a ticket must never end `failed` because the database was briefly away (a 1, 2, 4, 8 s schedule gave up after
15 s, while the server was still down). A longer outage is the sweep's: the worker cannot even write `failed` while
the database is down, so the ticket stays pending and is sent again once the database is back. A plain function,
so the policy is read and tested in one place while the classify task only follows it.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ATTEMPTS = 15  # the first try and fourteen retries: 1+2+4+8+16 + 9 × 30 = 301 s of waiting
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0


@dataclass(frozen=True)
class Retry:
    """Send the ticket again as attempt `attempt` (0 is the first try) after `countdown` seconds."""

    attempt: int
    countdown: float


def after_failure(failed_attempt: int) -> Retry | None:
    """What follows the failure of attempt `failed_attempt` (0-based): the retry to send, or None to give up.

    Attempts 0, 1, 2, 3, 4 are followed by retries after 1, 2, 4, 8, 16 s, later ones after 30 s each; the failure
    of attempt 14, the fifteenth, gives up. A negative number (a message from an unknown sender) counts as the
    first try.
    """
    failed_attempt = max(0, failed_attempt)
    next_attempt = failed_attempt + 1
    if next_attempt >= MAX_ATTEMPTS:
        return None
    return Retry(next_attempt, min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2**failed_attempt))


# A batch whose worker process died counts as this many attempts: a lost child is a graver sign than a database
# error (a text that crashes the model or exhausts memory would take a child down on every try), so such a ticket
# ends `failed` after its third loss instead of killing fifteen children.
WORKER_LOST_WEIGHT = 5
WORKER_LOST_DELAY_SECONDS = 1.0


def after_worker_lost(failed_attempt: int) -> Retry | None:
    """What follows attempt `failed_attempt` when the process running it died: a retry soon (the loss is usually
    an OOM kill or a restart, over at once), or None after the third loss."""
    next_attempt = max(0, failed_attempt) + WORKER_LOST_WEIGHT
    if next_attempt >= MAX_ATTEMPTS:
        return None
    return Retry(next_attempt, WORKER_LOST_DELAY_SECONDS)
