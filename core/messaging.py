"""Celery wiring shared by the API (which only sends) and the worker/beat (which consume).

Tasks are sent by name, so the API never imports worker code (nor TensorFlow through it).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from celery import Celery
from celery.utils import uuid as task_uuid
from kombu import Producer

from core.config import Settings

CLASSIFY_TASK = "furiwake.classify_ticket"
SWEEP_TASK = "furiwake.sweep"
NOOP_TASK = "furiwake.noop"
CLASSIFY_QUEUE = "classify"
TRAINING_QUEUE = "training"


# How long a sender waits for the broker before it gives up on one publish (connect, and each command).
PUBLISH_TIMEOUT_SECONDS = 0.5


def make_celery(settings: Settings) -> Celery:
    """A Celery app that sends (the API, beat, a CLI command), configured from `settings`.

    A sender gives up on a broker that is down after one attempt of at most PUBLISH_TIMEOUT_SECONDS: the ticket it
    publishes is already committed and the sweep re-sends whatever was not enqueued, so waiting is pure loss. By
    default kombu retries the connection with a 2 s back-off until broker_connection_timeout, and redis-py waits
    on a silent (not refusing) host without limit: an intake request blocked for seconds, and gunicorn's workers
    with it, for the whole outage. The workers' apps (configure_celery alone) keep Celery's patient reconnection.
    """
    app = configure_celery(Celery("furiwake", set_as_current=False), settings)
    fail_fast: dict[str, object] = {"max_retries": 0}  # kombu's default_channel: one connection attempt, no back-off
    if urlsplit(settings.broker_url).scheme in ("redis", "rediss"):
        fail_fast.update(socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS, socket_timeout=PUBLISH_TIMEOUT_SECONDS)
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, **fail_fast}
    app.conf.broker_connection_timeout = PUBLISH_TIMEOUT_SECONDS
    return app


def configure_celery(app: Celery, settings: Settings) -> Celery:
    """Configure `app` from `settings` and return it.

    The worker entry modules configure the app their module-level tasks are declared on (worker.classify_tasks,
    worker.trainer_tasks) once they have built their Settings; a task's defaults (acks_late, ignore_result, the
    serializer) are read from this configuration when the task is first bound, so it runs before any task is used.
    """
    app.conf.broker_url = settings.broker_url
    transport_options: dict[str, object] = {
        # Redis: an unacknowledged message returns to the queue after this long if its worker vanished. Long,
        # since a worker holds ETA messages (retries) unacknowledged too; the sweep re-sends such tickets sooner.
        "visibility_timeout": 3600,
    }
    if settings.embedded_broker:
        # kombu's filesystem transport: messages are files under var/broker, so `make run` needs no server.
        queue_dir = settings.broker_dir / "queue"
        queue_dir.mkdir(parents=True, exist_ok=True)
        (settings.broker_dir / "processed").mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "processed_folder": str(settings.broker_dir / "processed"),
            "control_folder": str(settings.broker_dir / "control"),
            "store_processed": False,
            "polling_interval": 0.05,
        }
        # kombu's filesystem transport with atomic writes (core.transports): its own can hand a consumer a
        # message file the producer has created but not yet written.
        app.conf.broker_transport = "core.transports:FilesystemTransport"
    if urlsplit(settings.broker_url).scheme == "redis":
        # kombu's Redis transport with one redis-py client per channel (core.transports). Named by its import
        # path so that logs show it; rediss:// and sentinel:// keep kombu's own, which set up TLS and sentinels.
        app.conf.broker_transport = "core.transports:RedisTransport"
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        task_default_queue=CLASSIFY_QUEUE,
        task_ignore_result=True,
        # A ticket is acknowledged only after its route is written. A classify batch whose child dies is sent
        # again by the worker's parent (worker.batching); a plain task (the sweep) is requeued
        # (task_reject_on_worker_lost). Messages of a worker killed whole wait for the visibility timeout, and
        # their tickets for the sweep, which comes first (docs/operations.md).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # celery-batches needs prefetch > batch size, or a batch never fills before the flush timer.
        worker_prefetch_multiplier=max(4, settings.classify_batch_size * 2),
        # Loading TensorFlow and the model in each child takes seconds; the default 4 s would kill it.
        worker_proc_alive_timeout=120,
        task_serializer="json",
        accept_content=["json"],
        timezone="Asia/Tokyo",
        enable_utc=True,
        beat_schedule={
            "sweep-stale-tickets": {"task": SWEEP_TASK, "schedule": float(settings.sweep_every_seconds)},
        },
        # The filesystem transport has no broadcast: remote control (and so mingle/gossip) is off there.
        worker_enable_remote_control=not settings.embedded_broker,
    )
    add_retraining(app, settings)
    return app


def enqueue_classification(app: Celery, ticket_ids: Iterable[str], producer: Producer | None = None) -> None:
    """Publish one classify message per ticket; raises if the broker is unreachable (callers decide).

    On every intake request, so it uses Celery's own two steps (`app.amqp.create_task_message`, then
    `send_task_message`) without what `send_task` wraps around them for a caller that awaits a result: routing
    look-ups, the result backend's hook, an AsyncResult, `reply_to`, the calling task's ids as parent (results are
    ignored: `task_ignore_result`). The message is otherwise the one `send_task` sends. `declare=[]`: it goes
    through the default exchange straight to the queue its routing key names, which needs nothing declared (the
    worker declares its queues), so kombu's per-message declaration check is skipped; `argsrepr` spares Celery's
    generic safe-repr of the arguments. With no `producer` (one its caller keeps: core.runtime.Runtime.producer),
    one is borrowed from the app's pool for the call.
    """
    amqp = app.amqp
    with app.producer_or_acquire(producer) as producer:
        for ticket_id in ticket_ids:
            args = [str(ticket_id)]
            message = amqp.create_task_message(
                task_uuid(), CLASSIFY_TASK, args, {}, argsrepr=repr(args), kwargsrepr="{}"
            )
            amqp.send_task_message(producer, CLASSIFY_TASK, message, queue=CLASSIFY_QUEUE, retry=False, declare=[])


# --- Retraining (issue 5; docs/retraining.md): its task, queue routing and the nightly beat entry ---------------

RETRAIN_TASK = "furiwake.retrain"


def add_retraining(app: Celery, settings: Settings) -> None:
    """Route the retrain task to the `training` queue (a trainer worker, concurrency 1) and schedule it."""
    from celery.schedules import crontab

    app.conf.task_routes = {**(app.conf.task_routes or {}), RETRAIN_TASK: {"queue": TRAINING_QUEUE}}
    if settings.retrain.schedule != "off":
        minute, hour, day_of_month, month_of_year, day_of_week = settings.retrain.schedule.split(" ")
        app.conf.beat_schedule["retrain-nightly"] = {
            "task": RETRAIN_TASK,
            "schedule": crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                                day_of_week=day_of_week),  # in app.conf.timezone (Asia/Tokyo)
            "kwargs": {"trigger": "schedule"},
            "options": {"queue": TRAINING_QUEUE},
        }


def enqueue_retrain(app: Celery, trigger: str) -> str:
    """Ask the trainer for one retrain; returns the task id. Raises if the broker is unreachable."""
    result = app.send_task(RETRAIN_TASK, kwargs={"trigger": trigger}, queue=TRAINING_QUEUE, retry=False)
    return str(result.id)
