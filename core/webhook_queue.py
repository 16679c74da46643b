"""Publishing webhook deliveries to the `mail` queue, by task name (the API never imports worker code).

Deliveries are committed `pending` before they are published: core.webhooks.emit stores them in the caller's
transaction and hands their ids, once it commits, to the publisher an entry point installed on its Runtime with
publish_through(). A publish that fails, or a process that installed none (a CLI command), loses nothing: the
webhook sweep (worker.webhook_tasks, every WEBHOOK_SWEEP_SECONDS) publishes pending deliveries that are overdue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial

from celery import Celery

from core import webhooks
from core.mail_queue import MAIL_QUEUE
from core.runtime import Runtime

log = logging.getLogger(__name__)

DELIVER_WEBHOOK_TASK = "furiwake.deliver_webhook"
WEBHOOK_SWEEP_TASK = "furiwake.sweep_webhooks"
# The mail worker's queue: the same kind of work (one outbound request, retried), already consumed by every
# deployment's classify worker (`-Q classify,mail`).
WEBHOOK_QUEUE = MAIL_QUEUE
WEBHOOK_SWEEP_SECONDS = 30.0


def enqueue_deliveries(app: Celery, delivery_ids: Iterable[int], countdown: float | None = None) -> None:
    """Publish one deliver_webhook message per id; raises if the broker is unreachable (callers decide)."""
    for delivery_id in delivery_ids:
        app.send_task(DELIVER_WEBHOOK_TASK, args=[int(delivery_id)], queue=WEBHOOK_QUEUE, countdown=countdown,
                      retry=False)


def publish_deliveries(runtime: Runtime, delivery_ids: list[int]) -> None:
    """After the commit: ask the worker to deliver; a broker that is down is left to the webhook sweep."""
    if not delivery_ids:
        return
    try:
        enqueue_deliveries(runtime.celery, delivery_ids)
    except Exception as exc:  # noqa: BLE001 - whatever the broker raised, the webhook sweep re-publishes
        log.warning("webhook deliveries %s stored but not published (%s: %s); the webhook sweep will", delivery_ids,
                    type(exc).__name__, exc)


def publish_through(runtime: Runtime) -> None:
    """Publish the deliveries every unit of work of this Runtime emits, once it commits (core.webhooks).

    The publisher travels in each session's `info` (from the Runtime's sessionmaker), so the services that emit
    (core.tickets, core.agents, worker.routing) need no Celery app and the entry points that call them no change.
    """
    info = dict(runtime.sessions.kw.get("info") or {})
    info[webhooks.PUBLISHER] = partial(publish_deliveries, runtime)
    runtime.sessions.configure(info=info)


def add_webhook_sweep(app: Celery) -> None:
    """The beat entry that publishes overdue pending deliveries (worker.beat). Always on: without subscriptions
    the sweep is one indexed query that finds nothing."""
    app.conf.beat_schedule["sweep-webhooks"] = {
        "task": WEBHOOK_SWEEP_TASK, "schedule": WEBHOOK_SWEEP_SECONDS, "options": {"queue": WEBHOOK_QUEUE},
    }
