"""Sending the outbox: `furiwake.send_mail` (one mail, one attempt) and `furiwake.sweep_outbox`, on the `mail` queue.

Declared on the classify worker's app (worker.classify_tasks.app), so `celery -A worker.classify_app worker
-Q classify,mail` runs them; they need no model. The rules are core.outbox's; this module only runs them:

1. claim the attempt in a unit of work of its own (skip mail no longer pending, not due, or claimed by another);
2. one SMTP transaction (core.mailer.send), outside any transaction;
3. mark it `sent` in a unit of work of its own right after the server's 250; or, if it failed, keep the error and
   publish the next attempt for when it is due (a 5xx refusal, or a day of failures, marks it `failed`).

docs/email.md ("Sending mail") gives the argument why a mail is never sent twice, and the one window left.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from core import mailer, outbox
from core.mail_queue import OUTBOX_SWEEP_SECONDS, OUTBOX_SWEEP_TASK, SEND_MAIL_TASK, enqueue_mail
from core.orm import Message, utcnow
from core.runtime import Runtime
from worker import context
from worker.classify_tasks import app

log = logging.getLogger(__name__)

# The schedule the tasks follow (core.outbox.RetryPolicy); an entry module may set a shorter one (the tests' worker).
POLICY = outbox.DEFAULT_POLICY
# Marking a sent mail `sent` is retried this often (1 s apart) before the task gives up: while it is not marked, a
# later attempt would send it again.
MARK_SENT_TRIES = 5


def lease_seconds(smtp_timeout: float) -> float:
    """How long an attempt holds its mail: longer than one SMTP transaction can last (about ten commands, each
    allowed smtp_timeout) plus marking it sent (MARK_SENT_TRIES seconds)."""
    return 10 * smtp_timeout + MARK_SENT_TRIES + 30


@dataclass(frozen=True)
class Attempt:
    """What one run of send_mail did: sent, failed, retry (retry_in seconds from now), or skipped."""

    outcome: str
    retry_in: float | None = None
    error: str | None = None


def deliver(runtime: Runtime, message_id: int, policy: outbox.RetryPolicy = outbox.DEFAULT_POLICY) -> Attempt:
    """One attempt at one outbound mail; the caller publishes the next one when `retry_in` says so."""
    mail_settings = runtime.settings.mail
    if not mail_settings.sends:
        log.warning("mail %s not sent: SMTP_URL is not set (it waits in the outbox)", message_id)
        return Attempt("skipped")
    with runtime.unit_of_work() as session:
        message = outbox.claim(session, message_id, policy, utcnow(), lease_seconds(mail_settings.smtp_timeout_seconds))
        if message is None:
            return Attempt("skipped")  # sent, failed, not due yet, or another task has this attempt
        email = mailer.build(message, mail_settings.mail_from)
        attempts, ticket_id = message.attempts, str(message.ticket_id)
    try:
        mailer.send(mail_settings, email)
    except mailer.SendError as exc:
        return _after_failure(runtime, message_id, attempts, ticket_id, exc, policy)
    _mark_sent(runtime, message_id, ticket_id)
    log.info("mail %s sent (attempt %d)", message_id, attempts, extra={"ticket_id": ticket_id})
    return Attempt("sent")


def _mark_sent(runtime: Runtime, message_id: int, ticket_id: str) -> None:
    for attempt in range(1, MARK_SENT_TRIES + 1):
        try:
            with runtime.unit_of_work() as session:
                outbox.mark_sent(session, message_id)
            return
        except SQLAlchemyError:
            if attempt == MARK_SENT_TRIES:
                # The one window (docs/email.md): the server has the mail, the outbox does not know. The next
                # attempt would send it again, with the same Message-ID, which receivers deduplicate on.
                log.exception("mail %s SENT but not marked sent", message_id, extra={"ticket_id": ticket_id})
                raise
            time.sleep(1.0)


def _after_failure(runtime: Runtime, message_id: int, attempts: int, ticket_id: str, exc: mailer.SendError,
                   policy: outbox.RetryPolicy) -> Attempt:
    error = f"attempt {attempts}: {exc}"
    now = utcnow()
    retry_in = 0.0
    try:
        with runtime.unit_of_work() as session:
            message = session.get(Message, message_id)
            final = exc.permanent or message is None or policy.gives_up(message, now)
            if final or message is None:
                outbox.mark_failed(session, message_id, error)
            else:
                outbox.note_error(session, message_id, error)
                retry_in = max(0.0, (policy.due_at(message) - now).total_seconds())
    except SQLAlchemyError:
        log.exception("mail %s: %s, and the outcome not stored (the outbox sweep retries)", message_id, exc,
                      extra={"ticket_id": ticket_id})
        return Attempt("retry", None, error)
    if final:
        log.warning("mail %s failed for good: %s", message_id, error, extra={"ticket_id": ticket_id})
        return Attempt("failed", None, error)
    log.warning("mail %s not sent: %s; next attempt in %.0f s", message_id, error, retry_in,
                extra={"ticket_id": ticket_id})
    return Attempt("retry", retry_in, error)


@app.task(name=SEND_MAIL_TASK, acks_late=True)
def send_mail(message_id: int) -> str:
    """Send one pending mail, or publish its next attempt (a lost one is re-published by the outbox sweep)."""
    attempt = deliver(context.current().runtime, int(message_id), POLICY)
    if attempt.retry_in is not None:
        try:
            enqueue_mail(app, [message_id], countdown=attempt.retry_in)
        except Exception:  # noqa: BLE001 - the outbox sweep re-publishes it when it is overdue
            log.warning("mail %s: next attempt not published; the outbox sweep will", message_id, exc_info=True)
    return attempt.outcome


def overdue_mail(runtime: Runtime, policy: outbox.RetryPolicy = outbox.DEFAULT_POLICY) -> list[int]:
    """Pending mail whose publish or retry message was lost: overdue by more than a sweep period."""
    if not runtime.settings.mail.sends:
        return []
    now = utcnow()
    with runtime.sessions() as session:
        return outbox.pending_ids(session, now - timedelta(seconds=OUTBOX_SWEEP_SECONDS), policy, now)


@app.task(name=OUTBOX_SWEEP_TASK, acks_late=True)
def sweep_outbox() -> int:
    """Re-publish overdue pending mail. A duplicate publish is harmless: core.outbox.claim lets one attempt run."""
    runtime = context.current().runtime
    overdue = overdue_mail(runtime, POLICY)
    if overdue:
        enqueue_mail(app, overdue)
        log.warning("outbox sweep re-published %d mails", len(overdue), extra={"message_ids": overdue})
    return len(overdue)
