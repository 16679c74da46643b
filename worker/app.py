"""The worker's Celery app: `celery -A worker.app worker -Q classify`.

TensorFlow is imported here, before Celery forks its children: importing is fork-safe and makes each child start
~10x faster. The model itself is loaded only inside each child (worker_process_init), never in the parent.
"""

from __future__ import annotations

import os

from celery.signals import worker_process_init

from core.config import Settings
from core.messaging import make_celery
from worker.state import ProcessState
from worker.tasks import register

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow  # noqa: E402  (pre-fork import, see the module docstring)

settings = Settings.from_env()
app = make_celery(settings)
if os.environ.get("RESULT_BACKEND"):
    app.conf.result_backend = os.environ["RESULT_BACKEND"]  # only the benchmark's no-op round trips need one
state = ProcessState(settings)
register(app, state)


@worker_process_init.connect
def _load_model_in_child(**_kwargs: object) -> None:
    # One TensorFlow thread per worker process by default: N processes on N cores, not N × N threads fighting.
    threads = int(os.environ.get("WORKER_TF_THREADS", "1"))
    tensorflow.config.threading.set_intra_op_parallelism_threads(threads)
    tensorflow.config.threading.set_inter_op_parallelism_threads(threads)
    state.reset_after_fork()
    try:
        state.predictor()
    except Exception:  # noqa: BLE001 - no model yet is fine: tasks retry until one is trained
        import logging

        logging.getLogger(__name__).warning("worker child started without a model", exc_info=True)
