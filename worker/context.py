"""What a task needs from the process it runs in, set once by the worker entry module that process started from.

Tasks are declared at module level (worker.classify_tasks, worker.trainer_tasks) and so cannot close over a
Runtime; the entry module (worker.classify_app, worker.trainer_app) builds one from Settings and installs it here
before Celery forks. Nothing is built at import time: a task run in a process no entry module set up fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.runtime import Runtime
from worker.current_model import CurrentModel


@dataclass(frozen=True)
class WorkerContext:
    runtime: Runtime
    model: CurrentModel | None = None  # the classify worker's; the trainer never loads a classify model


_installed: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    global _installed
    _installed = context


def current() -> WorkerContext:
    if _installed is None:
        raise RuntimeError("no worker context: start the worker from worker.classify_app or worker.trainer_app")
    return _installed


def current_model() -> CurrentModel:
    model = current().model
    if model is None:
        raise RuntimeError("this worker serves no classify model: classify tasks run on worker.classify_app")
    return model
