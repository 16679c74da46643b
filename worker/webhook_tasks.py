"""Delivering webhooks: `furiwake.deliver_webhook` (one delivery, one attempt) and `furiwake.sweep_webhooks`, on the
`mail` queue, declared on the classify worker's app like worker.mail_tasks (they need no model). The rules are
core.webhook_outbox's; this module only runs them:

1. claim the attempt in a unit of work of its own (skip a delivery no longer pending, not due, or claimed);
2. one signed POST (core.webhooks.signature), outside any transaction, redirects not followed;
3. a 2xx marks it `delivered`; 410 Gone marks it `failed` for good (the receiver says the hook is gone); anything
   else, or no answer, keeps the error and publishes the next attempt for when it is due, until the policy gives up.

Only the status code is kept, never the receiver's answer: an agent who can add a subscription must not be able to
read an internal URL's content through the admin page.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import requests
from celery.signals import worker_init
from sqlalchemy.exc import SQLAlchemyError

from core import webhook_outbox
from core.orm import WebhookDelivery, utcnow
from core.outbox import RetryPolicy
from core.runtime import Runtime
from core.webhook_queue import (
    DELIVER_WEBHOOK_TASK,
    WEBHOOK_SWEEP_SECONDS,
    WEBHOOK_SWEEP_TASK,
    enqueue_deliveries,
    publish_through,
)
from core.webhooks import signature
from worker import context
from worker.classify_tasks import app

log = logging.getLogger(__name__)

# The schedule the tasks follow; an entry module may set a shorter one (a test's worker).
POLICY = webhook_outbox.DEFAULT_POLICY
# Seconds to connect, and to wait for the answer's status line: a receiver should answer at once and work later.
TIMEOUT_SECONDS = 10.0
MARK_TRIES = 5
USER_AGENT = "furiwake-webhooks/1"


def lease_seconds(timeout: float) -> float:
    """How long an attempt holds its delivery: longer than the POST can last (connect + answer) plus marking it."""
    return 2 * timeout + MARK_TRIES + 30


@dataclass(frozen=True)
class Attempt:
    """What one run of deliver_webhook did: delivered, failed, retry (retry_in seconds from now), or skipped."""

    outcome: str
    retry_in: float | None = None
    error: str | None = None
    status_code: int | None = None


def deliver(runtime: Runtime, delivery_id: int, policy: RetryPolicy = webhook_outbox.DEFAULT_POLICY,
            timeout: float = TIMEOUT_SECONDS) -> Attempt:
    """One attempt at one delivery; the caller publishes the next one when `retry_in` says so."""
    with runtime.unit_of_work() as session:
        claimed = webhook_outbox.claim(session, delivery_id, policy, utcnow(), lease_seconds(timeout))
    if claimed is None:
        return Attempt("skipped")  # delivered, failed, not due yet, or another task has this attempt
    try:
        status = post(claimed, timeout)
    except requests.RequestException as exc:
        return _after_failure(runtime, claimed, f"attempt {claimed.attempts}: {type(exc).__name__}: {exc}"[:500], None,
                              False, policy)
    if 200 <= status < 300:
        _mark_delivered(runtime, claimed, status)
        log.info("webhook delivery %s delivered (attempt %d, HTTP %d)", delivery_id, claimed.attempts, status,
                 extra={"ticket_id": claimed.ticket_id})
        return Attempt("delivered", status_code=status)
    reason = "HTTP 410 Gone: the receiver removed this hook" if status == 410 else f"HTTP {status}"
    return _after_failure(runtime, claimed, f"attempt {claimed.attempts}: {reason}", status, status == 410, policy)


def post(claimed: webhook_outbox.Claimed, timeout: float) -> int:
    """POST the stored payload, signed now; the answer's status code (its body is never read)."""
    headers = {
        "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
        "Furiwake-Event": claimed.event, "Furiwake-Event-Id": str(claimed.event_id),
        "Furiwake-Signature": signature(claimed.secret, int(time.time()), claimed.payload),
    }  # fmt: skip
    with requests.Session() as http:
        http.trust_env = False  # every setting comes from Settings: no proxy or .netrc from the environment
        with http.post(claimed.url, data=claimed.payload, headers=headers, timeout=timeout, allow_redirects=False,
                       stream=True) as response:
            return response.status_code


def _mark_delivered(runtime: Runtime, claimed: webhook_outbox.Claimed, status: int) -> None:
    for attempt in range(1, MARK_TRIES + 1):
        try:
            with runtime.unit_of_work() as session:
                webhook_outbox.mark_delivered(session, claimed.delivery_id, status)
            return
        except SQLAlchemyError:
            if attempt == MARK_TRIES:
                # The receiver has the event, the outbox does not know: the next attempt (after the lease) sends it
                # again with the same event id, which receivers deduplicate on.
                log.exception("webhook delivery %s DELIVERED but not marked", claimed.delivery_id,
                              extra={"ticket_id": claimed.ticket_id})
                raise
            time.sleep(1.0)


def _after_failure(runtime: Runtime, claimed: webhook_outbox.Claimed, error: str, status: int | None,
                   permanent: bool, policy: RetryPolicy) -> Attempt:
    delivery_id, now, retry_in = claimed.delivery_id, utcnow(), 0.0
    try:
        with runtime.unit_of_work() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            final = permanent or delivery is None or webhook_outbox.gives_up(policy, delivery, now)
            if final or delivery is None:
                webhook_outbox.mark_failed(session, delivery_id, error, status)
            else:
                webhook_outbox.note_error(session, delivery_id, error, status)
                retry_in = max(0.0, (webhook_outbox.due_at(policy, delivery) - now).total_seconds())
    except SQLAlchemyError:
        log.exception("webhook delivery %s: %s, and the outcome not stored (the sweep retries)", delivery_id, error,
                      extra={"ticket_id": claimed.ticket_id})
        return Attempt("retry", None, error, status)
    if final:
        log.warning("webhook delivery %s failed for good: %s", delivery_id, error,
                    extra={"ticket_id": claimed.ticket_id})
        return Attempt("failed", None, error, status)
    log.warning("webhook delivery %s not delivered: %s; next attempt in %.0f s", delivery_id, error, retry_in,
                extra={"ticket_id": claimed.ticket_id})
    return Attempt("retry", retry_in, error, status)


@app.task(name=DELIVER_WEBHOOK_TASK, acks_late=True)
def deliver_webhook(delivery_id: int) -> str:
    """Deliver one pending webhook, or publish its next attempt (a lost one is re-published by the sweep)."""
    attempt = deliver(context.current().runtime, int(delivery_id), POLICY)
    if attempt.retry_in is not None:
        try:
            enqueue_deliveries(app, [delivery_id], countdown=attempt.retry_in)
        except Exception:  # noqa: BLE001 - the webhook sweep re-publishes it when it is overdue
            log.warning("webhook delivery %s: next attempt not published; the sweep will", delivery_id,
                        exc_info=True)
    return attempt.outcome


def overdue_deliveries(runtime: Runtime, policy: RetryPolicy = webhook_outbox.DEFAULT_POLICY) -> list[int]:
    """Pending deliveries whose publish or retry message was lost: overdue by more than a sweep period."""
    now = utcnow()
    with runtime.sessions() as session:
        return webhook_outbox.pending_ids(session, now - timedelta(seconds=WEBHOOK_SWEEP_SECONDS), policy, now)


@app.task(name=WEBHOOK_SWEEP_TASK, acks_late=True)
def sweep_webhooks() -> int:
    """Re-publish overdue deliveries. A duplicate publish is harmless: webhook_outbox.claim lets one attempt run."""
    overdue = overdue_deliveries(context.current().runtime, POLICY)
    if overdue:
        enqueue_deliveries(app, overdue)
        log.warning("webhook sweep re-published %d deliveries", len(overdue), extra={"delivery_ids": overdue})
    return len(overdue)


@worker_init.connect
def _publish_emitted(**_kwargs: object) -> None:
    """The worker emits ticket.routed while routing (worker.routing): publish those deliveries once committed, like
    the API does. Runs in the worker's parent before the fork, so every child inherits it."""
    try:
        runtime = context.current().runtime
    except RuntimeError:
        return  # a worker started without an entry module's context runs no task that emits
    publish_through(runtime)
