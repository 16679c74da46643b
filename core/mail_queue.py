"""Publishing outbound mail to the `mail` queue, by task name (the API never imports worker code).

The mail is already committed `pending` when it is published; a publish that fails loses nothing, the outbox sweep
(worker.mail_tasks, every OUTBOX_SWEEP_SECONDS) re-publishes pending mail whose attempt is overdue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import Celery

from core import outbox
from core.config import Settings
from core.orm import Ticket
from core.runtime import Runtime

log = logging.getLogger(__name__)

SEND_MAIL_TASK = "furiwake.send_mail"
OUTBOX_SWEEP_TASK = "furiwake.sweep_outbox"
MAIL_QUEUE = "mail"
OUTBOX_SWEEP_SECONDS = 60.0


def enqueue_mail(app: Celery, message_ids: Iterable[int], countdown: float | None = None) -> None:
    """Publish one send_mail message per id; raises if the broker is unreachable (callers decide)."""
    for message_id in message_ids:
        app.send_task(SEND_MAIL_TASK, args=[int(message_id)], queue=MAIL_QUEUE, countdown=countdown, retry=False)


def publish_mail(runtime: Runtime, message_ids: list[int]) -> None:
    """After the commit: ask the mail worker to send; a broker that is down is left to the outbox sweep."""
    if not message_ids or not runtime.settings.mail.sends:
        return  # without SMTP_URL the mail waits in the outbox; the sweep publishes it once SMTP_URL is set
    try:
        enqueue_mail(runtime.celery, message_ids)
    except Exception as exc:  # noqa: BLE001 - whatever the broker raised, the outbox sweep re-publishes
        log.warning("mail %s stored but not published (%s: %s); the outbox sweep will", message_ids,
                    type(exc).__name__, exc)


def acknowledge_new_ticket(runtime: Runtime, ticket: Ticket) -> None:
    """Queue and publish a new ticket's acknowledgement, if it gets one (core.outbox.queue_acknowledgement says
    when), in a short unit of work of its own right after the ticket's.

    Never raises: an acknowledgement that cannot be stored must not fail the intake request that stored the ticket.
    """
    mail = runtime.settings.mail
    if not mail.acknowledges or not ticket.customer_email or ticket.channel not in outbox.ACKNOWLEDGED_CHANNELS:
        return  # the common cases, without a transaction
    try:
        with runtime.unit_of_work() as session:
            message = outbox.queue_acknowledgement(session, ticket, mail)
            message_id = message.id if message is not None else None
    except Exception:  # noqa: BLE001 - logged; the ticket itself is stored and routed regardless
        log.exception("ticket %s: acknowledgement not stored", ticket.id, extra={"ticket_id": str(ticket.id)})
        return
    if message_id is not None:
        publish_mail(runtime, [message_id])


def add_outbox_sweep(app: Celery, settings: Settings) -> None:
    """The beat entry that re-publishes overdue pending mail (worker.beat)."""
    if settings.mail.sends:
        app.conf.beat_schedule["sweep-outbox"] = {
            "task": OUTBOX_SWEEP_TASK, "schedule": OUTBOX_SWEEP_SECONDS, "options": {"queue": MAIL_QUEUE},
        }
