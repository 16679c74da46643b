"""The model a classify worker process serves: the version MODEL_DIR/CURRENT names, loaded after the fork.

A model loaded before Celery forks hangs the child on its first predict, so nothing here loads at construction.
The registry (core/registry.py) keeps CURRENT equal to the champion: when it names a new version, the next batch
loads it (hot reload; docs/retraining.md).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from core.artifacts import NoModelError, current_version, resolve

log = logging.getLogger(__name__)
RELOAD_CHECK_SECONDS = 2.0
RELOAD_RETRY_SECONDS = 30.0


class CurrentModel:
    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._predictor: Any = None  # serving.predictor.Predictor, imported lazily (TensorFlow)
        self._checked_at = 0.0
        self._failed_version: str | None = None  # a version that failed to load, and when: not retried at once
        self._failed_at = 0.0
        self._lock = threading.Lock()

    def reset_after_fork(self) -> None:
        """A forked child starts with nothing loaded: its parent's model, if any, is not usable after the fork."""
        self._predictor = None
        self._checked_at = 0.0
        self._failed_version = None

    def predictor(self):  # type: ignore[no-untyped-def]
        """The current model, reloaded when MODEL_DIR/CURRENT changes; raises NoModelError if none exists yet.

        A promotion or a rollback reaches every worker process at its next batch after at most
        RELOAD_CHECK_SECONDS plus the load itself. The new model is loaded and warmed up before it replaces the old
        one; the batch in hand is routed by the model it started with (each ticket records that version). If the
        new version cannot be loaded, the old model keeps serving and the load is tried again after
        RELOAD_RETRY_SECONDS: a bad artifact must never stop routing.
        """
        now = time.monotonic()
        with self._lock:
            if self._predictor is not None and now - self._checked_at < RELOAD_CHECK_SECONDS:
                return self._predictor
            self._checked_at = now
            wanted = current_version(self.model_dir)
            if self._predictor is not None and self._predictor.version == wanted:
                return self._predictor
            if wanted is None and self._predictor is not None:
                return self._predictor
            recently_failed = self._failed_version == wanted and now - self._failed_at < RELOAD_RETRY_SECONDS
            if self._predictor is not None and recently_failed:
                return self._predictor
            from serving.predictor import Predictor

            started = time.monotonic()
            try:
                predictor = Predictor(resolve(None, self.model_dir))
            except Exception:
                if self._predictor is None:
                    raise
                self._failed_version, self._failed_at = wanted, now
                log.exception("could not load model %s; %s keeps serving, retrying in %.0f s", wanted,
                              self._predictor.version, RELOAD_RETRY_SECONDS)
                return self._predictor
            previous = self._predictor.version if self._predictor is not None else None
            self._predictor = predictor
            log.info("model %s loaded in %.1f s (was %s)", predictor.version, time.monotonic() - started, previous,
                     extra={"model_version": predictor.version})
            return predictor


__all__ = ["CurrentModel", "NoModelError"]
