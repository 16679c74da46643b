"""The trainer: `celery -A worker.trainer_app worker -Q training -c 1`.

Its own app, with worker.trainer_tasks' one task (retrain): it never loads a classify model, and it imports neither
TensorFlow nor serving at start-up (training is imported inside the task). Built once from Settings: logging, one
Runtime, the per-process context the task reads.
"""

from __future__ import annotations

import os

# TensorFlow's own variable, read when a retrain imports it: its start-up info and warning lines are noise in a
# worker's log (errors still show). Set before anything imports TensorFlow; an operator's value wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from celery.signals import worker_process_init

from core.config import Settings
from core.logs import install_celery_logging
from core.messaging import configure_celery
from core.runtime import Runtime
from worker import context, trainer_tasks

settings = Settings.from_env()
install_celery_logging(settings)
runtime = Runtime.build(settings)
app = configure_celery(trainer_tasks.app, settings)
context.install(context.WorkerContext(runtime))


@worker_process_init.connect
def _start_child(**_kwargs: object) -> None:
    runtime.reset_after_fork()
