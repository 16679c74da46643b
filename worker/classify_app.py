"""The classify worker: `celery -A worker.classify_app worker -Q classify`.

Built once per worker from Settings: logging, one Runtime, the app worker.classify_tasks declares its tasks on, and
the per-process context those tasks read. TensorFlow (through serving.predictor) is imported here, before Celery
forks its children: importing is fork-safe and makes each child start ~10x faster. The model itself is loaded only
inside each child (worker_process_init), never in the parent: a model loaded before the fork hangs the child.
"""

from __future__ import annotations

import logging

from celery.signals import worker_init, worker_process_init, worker_process_shutdown

import serving.predictor  # noqa: F401  (pre-fork TensorFlow import, see the module docstring)
from core.artifacts import NoModelError
from core.config import Settings
from core.heartbeats import Heartbeat
from core.logs import install_celery_logging
from core.messaging import configure_celery
from core.runtime import Runtime
from worker import assign_tasks, classify_tasks, context, mail_tasks, webhook_tasks  # noqa: F401  (tasks register)
from worker.current_model import CurrentModel
from worker.memory import drop_clean_library_pages, freeze_before_fork

settings = Settings.from_env()
install_celery_logging(settings)
runtime = Runtime.build(settings)
app = configure_celery(classify_tasks.app, settings)
if settings.result_backend:
    app.conf.result_backend = settings.result_backend  # only the benchmark's no-op round trips need one
classify_tasks.use_batching(settings)
model = CurrentModel(settings.model_dir)
context.install(context.WorkerContext(runtime, model))
heartbeat: Heartbeat | None = None  # this child's row in worker_heartbeats (core/heartbeats.py), after the fork


@worker_init.connect
def _before_pool(**_kwargs: object) -> None:
    """The pool forks its children after this: keep the collector from copying the parent's heap into each one,
    and give back the library pages only TensorFlow's start-up touched (worker/memory.py)."""
    freeze_before_fork()
    advised = drop_clean_library_pages()
    logging.getLogger(__name__).info("pool parent: %d MiB of read-only library mappings released before the fork",
                                     advised >> 20)


@worker_process_init.connect
def _start_child(**_kwargs: object) -> None:
    import tensorflow  # already imported before the fork: this only names it

    # One TensorFlow thread per worker process by default: N processes on N cores, not N x N threads fighting.
    tensorflow.config.threading.set_intra_op_parallelism_threads(settings.worker_tf_threads)
    tensorflow.config.threading.set_inter_op_parallelism_threads(settings.worker_tf_threads)
    runtime.reset_after_fork()
    model.reset_after_fork()
    try:
        model.predictor()  # logs "serving model <version> (loaded in N s)"
    except NoModelError as exc:  # no usable model yet is fine: tickets wait pending until one is there
        logging.getLogger(__name__).warning("worker child started without a model: %s", exc)
    except Exception:  # noqa: BLE001 - anything else: the tasks report it again per batch
        logging.getLogger(__name__).warning("worker child started without a model", exc_info=True)
    # Readiness across machines: /readyz and `furiwake run` read this row. Written only now, after the load, so
    # "serving" is never claimed before the model can route; a later hot swap beats at once (CurrentModel._serve).
    global heartbeat
    heartbeat = Heartbeat(runtime.unit_of_work, lambda: model.version)
    heartbeat.start()
    model.on_serve = heartbeat.wake


@worker_process_shutdown.connect
def _stop_child(pid: int | None = None, **_kwargs: object) -> None:
    """A child that exits no longer serves its model: its live gauges leave /metrics (core/metrics.py), its
    heartbeat row leaves /readyz."""
    if heartbeat is not None:
        heartbeat.stop()
    if settings.metrics_dir is not None and pid is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(settings.metrics_dir))
