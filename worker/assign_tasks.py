"""The periodic assignment pass: `furiwake.assign_tickets`, every core.assignment.ASSIGN_EVERY_SECONDS (worker.beat).

Declared on the classify worker's app (worker.classify_tasks.app) like worker.mail_tasks: it needs no model. It
returns tickets their assignee left untouched to the pool and assigns every ticket that waits (everyone of its route
was at their cap, or away), in one unit of work; the rules are core.assignment's.

The worker's own routing assigns too (worker.routing calls core.assignment.after_routing): _install_settings hands
the hook this worker's ASSIGNMENT settings, the way worker.webhook_tasks hands it the webhook publisher.
"""

from __future__ import annotations

import logging

from celery.signals import worker_init

from core import assignment
from worker import context
from worker.classify_tasks import app

log = logging.getLogger(__name__)


@app.task(name=assignment.ASSIGN_TASK, acks_late=True)
def assign_tickets() -> dict[str, int]:
    """One pass; a lost or doubled run is harmless (the next pass does the same work, and a ticket is assigned once
    whoever runs: core.assignment's locks)."""
    runtime = context.current().runtime
    settings = runtime.settings.assignment
    if not settings.enabled:
        return {"returned": 0, "assigned": 0}
    with runtime.unit_of_work() as session:
        outcome = assignment.sweep(session, settings)
    if outcome.returned or outcome.assigned:
        log.info("assignment pass: %d returned to the pool, %d assigned", len(outcome.returned),
                 len(outcome.assigned))
    return {"returned": len(outcome.returned), "assigned": len(outcome.assigned)}


@worker_init.connect
def _install_settings(**_kwargs: object) -> None:
    """Runs in the worker's parent before the fork, so every child's sessions carry the settings."""
    try:
        runtime = context.current().runtime
    except RuntimeError:
        return  # a worker started without an entry module's context routes nothing
    assignment.install(runtime)
