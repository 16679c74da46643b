"""The classify worker's tasks: classify (celery-batches), sweep and noop, declared on the module's own app.

The tasks are thin: routing is worker.routing's service functions, the retry policy is worker.retry, and each unit
of work (routing a batch, the sweep, marking tickets failed) is one `runtime.unit_of_work()` opened here. The app
is configured, and the per-process context installed, by the entry module worker.classify_app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import structlog
from celery import Celery
from celery_batches import SimpleRequest
from sqlalchemy.exc import DBAPIError

from core.artifacts import NoModelError
from core.config import Settings
from core.messaging import CLASSIFY_QUEUE, CLASSIFY_TASK, NOOP_TASK, SWEEP_TASK, enqueue_classification
from core.runtime import Runtime
from worker import context, retry, routing
from worker.batching import RearmingBatches

log = logging.getLogger(__name__)

# Configured by worker.classify_app (core.messaging.configure_celery) before any task is bound.
app = Celery("furiwake", set_as_current=False)


def use_batching(settings: Settings) -> None:
    """celery-batches reads these on every message, so the entry module sets them from Settings at start-up."""
    task = app.tasks[CLASSIFY_TASK]
    task.flush_every = settings.classify_batch_size  # type: ignore[attr-defined]
    task.flush_interval = settings.classify_batch_wait_ms / 1000.0  # type: ignore[attr-defined]


def route_batch(runtime: Runtime, predictor, ticket_ids: Sequence[str],  # type: ignore[no-untyped-def]
                review_thresholds: Mapping[str, float]) -> routing.RoutingOutcome:
    """Read the pending tickets, classify them in one model call, write every route in the batch's one unit of work.

    The read is a plain session, not part of the unit of work: worker.routing says why.
    """
    with runtime.sessions() as session:
        batch = routing.pending_tickets(session, ticket_ids)
    plan = routing.plan_routes(predictor, batch, review_thresholds)
    if plan.params:
        with runtime.unit_of_work() as session:
            routing.write_routes(session, plan)
    return plan.outcome


def retry_or_fail(runtime: Runtime, requests: Sequence[SimpleRequest], error: str,
                  policy: Callable[[int], retry.Retry | None] = retry.after_failure) -> None:  # fmt: skip
    """Send each ticket again as `policy` (worker.retry) says; once it gives up, mark the ticket `failed`."""
    give_up = []
    for request in requests:
        ticket_id = request.args[0]
        step = policy(int(request.kwargs.get("attempt", 0)))
        if step is None:
            give_up.append(ticket_id)
            continue
        app.send_task(CLASSIFY_TASK, args=[ticket_id], kwargs={"attempt": step.attempt}, queue=CLASSIFY_QUEUE,
                      countdown=step.countdown)
    if give_up:
        try:
            with runtime.unit_of_work() as session:
                routing.mark_failed(session, give_up, error)
        except DBAPIError:
            # The database is still down: the sweep will find these tickets pending and send them again.
            log.exception("could not mark %d tickets failed", len(give_up), extra={"ticket_ids": give_up})


class ClassifyBatches(RearmingBatches):
    """The classify task's batching: a batch whose child died is sent again through worker.retry's policy for lost
    workers (worker.batching says why), so a ticket that kills its child every time ends `failed` after its third
    loss.

    This runs in the worker's parent, in its event loop: publishing is quick, and only the last try's loss writes to
    the database (one UPDATE) through the parent's own Runtime (its children drop their inherited copies of its pool).
    """

    abstract = True

    def on_batch_lost(self, requests: Sequence[SimpleRequest], reason: str) -> None:
        retry_or_fail(context.current().runtime, requests, f"worker process lost: {reason}", retry.after_worker_lost)


@app.task(base=ClassifyBatches, name=CLASSIFY_TASK, acks_late=True)
def classify_ticket(requests: list[SimpleRequest]) -> None:
    """Route a batch of tickets (celery-batches gathers up to CLASSIFY_BATCH_SIZE messages per model call)."""
    worker = context.current()
    runtime, thresholds = worker.runtime, worker.runtime.settings.review_thresholds
    requests = [request for request in requests if request.args]
    ids = [request.args[0] for request in requests]
    try:
        predictor = context.current_model().predictor()
    except NoModelError as exc:
        # Not the tickets' fault, and no attempt of theirs: they stay pending, never `failed`, and the sweep sends
        # them again every SWEEP_AFTER_SECONDS until a model is there (`furiwake train`, or a promotion).
        log.warning("no model to route with (%s); %d tickets wait for one (the sweep re-sends them)", exc, len(ids),
                    extra={"ticket_ids": ids})
        return
    try:
        outcome = route_batch(runtime, predictor, ids, thresholds)
    except DBAPIError as exc:
        log.warning("database error routing %d tickets: %s", len(ids), exc, extra={"ticket_ids": ids})
        retry_or_fail(runtime, requests, f"database error: {exc}")
        return
    except Exception:  # noqa: BLE001 - a bad ticket must not take the batch down: isolate it
        log.exception("routing a batch of %d failed; retrying one by one", len(ids), extra={"ticket_ids": ids})
        for request in requests:
            with structlog.contextvars.bound_contextvars(ticket_id=str(request.args[0])):
                try:
                    route_batch(runtime, predictor, [request.args[0]], thresholds)
                except Exception as single:  # noqa: BLE001
                    log.warning("routing ticket %s failed: %s", request.args[0], type(single).__name__)
                    retry_or_fail(runtime, [request], f"{type(single).__name__}: {single}")
        return
    log.info("routed %d, needs review %d, skipped %d (model %s)", len(outcome.routed), len(outcome.needs_review),
             len(outcome.skipped), predictor.version,
             extra={"ticket_ids": [*outcome.routed, *outcome.needs_review], "model_version": predictor.version})


@app.task(name=SWEEP_TASK, acks_late=True)
def sweep() -> int:
    """Re-enqueue tickets left pending too long: what a broker outage or a lost message left behind.

    The stale tickets are read in a plain session (worker.routing says why reads stay out of the unit of work); the
    unit of work marks them `queued` and publishes before it commits, so a failed publish marks nothing.
    """
    runtime = context.current().runtime
    with runtime.sessions() as session:
        stale = routing.stale_ticket_ids(session, runtime.settings.sweep_after_seconds)
    if not stale:
        return 0
    with runtime.unit_of_work() as session:
        routing.mark_queued(session, stale)
        enqueue_classification(app, stale)
    log.warning("sweep re-enqueued %d stale tickets", len(stale), extra={"ticket_ids": stale})
    return len(stale)


@app.task(name=NOOP_TASK, ignore_result=False)
def noop() -> None:
    """A task that does nothing: the benchmark's measure of the broker's own round trip."""
    return None
