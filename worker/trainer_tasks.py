"""The trainer's one task, retrain, declared on the module's own app: the classify tasks are not registered here,
so a trainer never loads a classify model.

Nothing TensorFlow-related is imported at module level: training is imported inside the task, so the trainer's
parent process stays small and its child pays for TensorFlow only when it first retrains. The app is configured,
and the per-process context installed, by the entry module worker.trainer_app.
"""

from __future__ import annotations

import gc
import logging

from celery import Celery

from core.messaging import RETRAIN_TASK, TRAINING_QUEUE
from worker import context

log = logging.getLogger(__name__)

# Configured by worker.trainer_app (core.messaging.configure_celery) before any task is bound.
app = Celery("furiwake", set_as_current=False)


@app.task(name=RETRAIN_TASK, queue=TRAINING_QUEUE, acks_late=False, ignore_result=True)
def retrain(trigger: str = "schedule", force: bool = False) -> dict[str, object]:
    """One retrain on the `training` queue (a trainer worker, concurrency 1): training.retrain.retrain.

    Acknowledged on receipt, unlike the classify task: a retrain that kills its worker (out of memory, say) must not
    be redelivered into a crash loop; the next scheduled run, or the button, tries again, and the retrain lease
    (renewed while training) expires by then.
    """
    from training.retrain import retrain as run_retrain

    try:
        outcome = run_retrain(context.current().runtime, trigger=trigger, force=force)
    finally:
        import keras

        keras.backend.clear_session()  # a long-lived trainer must not grow with every retrain
        gc.collect()
    log.info("retrain (%s): %s", trigger, outcome.reason)
    return outcome.as_dict()
