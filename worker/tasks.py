"""Celery tasks: thin wrappers over worker.routing (classify, sweep) and training.retrain (retrain), registered on
the app built in worker.app."""

from __future__ import annotations

import logging

from celery import Celery
from celery_batches import Batches
from sqlalchemy.exc import DBAPIError, OperationalError

from core.artifacts import NoModelError
from core.messaging import (
    CLASSIFY_QUEUE,
    CLASSIFY_TASK,
    NOOP_TASK,
    RETRAIN_TASK,
    SWEEP_TASK,
    TRAINING_QUEUE,
    enqueue_classification,
)
from worker import routing
from worker.state import ProcessState

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


def backoff_seconds(attempt: int) -> float:
    """1, 2, 4, 8 ... seconds, at most a minute."""
    return float(min(60, 2**attempt))


def register(app: Celery, state: ProcessState) -> None:
    settings = state.settings

    def retry_or_fail(requests, error: str) -> None:  # type: ignore[no-untyped-def]
        """Send each ticket again with a backoff; after MAX_ATTEMPTS mark it `failed` with the error kept."""
        give_up = []
        for request in requests:
            attempt = int(request.kwargs.get("attempt", 0)) + 1
            ticket_id = request.args[0]
            if attempt >= MAX_ATTEMPTS:
                give_up.append(ticket_id)
                continue
            app.send_task(CLASSIFY_TASK, args=[ticket_id], kwargs={"attempt": attempt}, queue=CLASSIFY_QUEUE,
                          countdown=backoff_seconds(attempt))
        if give_up:
            try:
                routing.mark_failed(state.sessions, give_up, error)
            except DBAPIError:
                # The database is still down: the sweep will find these tickets pending and send them again.
                log.exception("could not mark %d tickets failed", len(give_up))

    @app.task(
        base=Batches,
        name=CLASSIFY_TASK,
        flush_every=settings.classify_batch_size,
        flush_interval=settings.classify_batch_wait_ms / 1000.0,
        acks_late=True,
    )
    def classify_ticket(requests):  # type: ignore[no-untyped-def]
        """Route a batch of tickets (celery-batches gathers up to CLASSIFY_BATCH_SIZE messages per model call)."""
        ids = [request.args[0] for request in requests if request.args]
        try:
            predictor = state.predictor()
        except NoModelError as exc:
            log.warning("no model yet (%s); retrying %d tickets later", exc, len(ids))
            retry_or_fail(requests, str(exc))
            return None
        try:
            outcome = routing.route_tickets(state.sessions, predictor, ids, settings.review_thresholds)
        except (OperationalError, DBAPIError) as exc:
            log.warning("database error routing %d tickets: %s", len(ids), exc)
            retry_or_fail(requests, f"database error: {exc}")
            return None
        except Exception:  # noqa: BLE001 - a bad ticket must not take the batch down: isolate it
            log.exception("routing a batch of %d failed; retrying one by one", len(ids))
            for request in requests:
                try:
                    routing.route_tickets(state.sessions, predictor, [request.args[0]], settings.review_thresholds)
                except Exception as single:  # noqa: BLE001
                    retry_or_fail([request], f"{type(single).__name__}: {single}")
            return None
        log.info("routed %d, needs review %d, skipped %d (model %s)", len(outcome.routed),
                 len(outcome.needs_review), len(outcome.skipped), predictor.version)
        return None

    @app.task(name=SWEEP_TASK, acks_late=True)
    def sweep() -> int:
        """Re-enqueue tickets left pending too long: what a broker outage or a lost message left behind."""
        stale = routing.stale_ticket_ids(state.sessions, settings.sweep_after_seconds)
        if stale:
            enqueue_classification(app, stale)
            routing.mark_queued(state.sessions, stale)
            log.warning("sweep re-enqueued %d stale tickets", len(stale))
        return len(stale)

    @app.task(name=NOOP_TASK, ignore_result=False)
    def noop() -> None:
        """A task that does nothing: the benchmark's measure of the broker's own round trip."""
        return None

    @app.task(name=RETRAIN_TASK, queue=TRAINING_QUEUE, acks_late=False, ignore_result=True)
    def retrain(trigger: str = "schedule", force: bool = False) -> dict[str, object]:
        """One retrain on the `training` queue (a trainer worker, concurrency 1): training.retrain.retrain.

        Acknowledged on receipt, unlike the classify task: a retrain that kills its worker (out of memory, say)
        must not be redelivered into a crash loop; the next scheduled run, or the button, tries again, and the
        retrain lease (renewed while training) expires by then.
        """
        import gc

        from training.retrain import retrain as run_retrain

        try:
            outcome = run_retrain(settings, state.sessions, trigger=trigger, force=force)
        finally:
            import keras

            keras.backend.clear_session()  # a long-lived trainer must not grow with every retrain
            gc.collect()
        log.info("retrain (%s): %s", trigger, outcome.reason)
        return outcome.as_dict()
