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

from core import metrics
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
        self._failure = ""  # the message of that failure, repeated while it is not retried
        self._lock = threading.Lock()

    def reset_after_fork(self) -> None:
        """A forked child starts with nothing loaded: its parent's model, if any, is not usable after the fork."""
        self._predictor = None
        self._checked_at = 0.0
        self._failed_version = None

    @property
    def version(self) -> str | None:
        """The version this process serves now (None before one is loaded); never loads (the heartbeat's view)."""
        predictor = self._predictor
        return str(predictor.version) if predictor is not None else None

    def predictor(self):  # type: ignore[no-untyped-def]
        """The current model, reloaded when MODEL_DIR/CURRENT changes; raises NoModelError if none can serve.

        A promotion or a rollback reaches every worker process at its next batch after at most
        RELOAD_CHECK_SECONDS plus the load itself. The new model is loaded and warmed up before it replaces the old
        one; the batch in hand is routed by the model it started with (each ticket records that version). If the
        new version cannot be loaded, the old model keeps serving and the load is tried again after
        RELOAD_RETRY_SECONDS: a bad artifact must never stop routing.

        With no model loaded yet, a version that cannot be loaded (a damaged meta.json, a truncated model.keras)
        is reported as NoModelError naming the directory and the fix, like a missing model: the tickets wait
        pending instead of every batch failing with a traceback, and a good version is picked up as soon as
        CURRENT names it (or after RELOAD_RETRY_SECONDS, if the same version is repaired in place).
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
            if self._failed_version == wanted and now - self._failed_at < RELOAD_RETRY_SECONDS:
                if self._predictor is not None:
                    return self._predictor
                raise NoModelError(self._failure)
            from serving.predictor import Predictor

            started = time.monotonic()
            try:
                predictor = Predictor(resolve(None, self.model_dir))
            except NoModelError:
                raise  # nothing there yet: resolve's message names the directory and `furiwake train`
            except Exception as exc:  # noqa: BLE001 - any damage in the artifact: report it, keep the worker up
                first = self._failed_version != wanted
                self._failed_version, self._failed_at = wanted, now
                self._failure = unusable_model(self.model_dir, wanted, exc)
                # The traceback once per version, at debug: the one-line message says what is wrong and the fix.
                log.debug("loading model %s failed", wanted, exc_info=first)
                if self._predictor is None:
                    raise NoModelError(self._failure) from exc
                log.error("%s; %s keeps serving, retrying in %.0f s", self._failure, self._predictor.version,
                          RELOAD_RETRY_SECONDS)
                return self._predictor
            previous = self._predictor.version if self._predictor is not None else None
            self._predictor = predictor
            self._failed_version = None
            metrics.worker_model(predictor.version, previous)
            replacing = f", replacing {previous}" if previous is not None else ""
            log.info("serving model %s (loaded in %.1f s%s)", predictor.version, time.monotonic() - started,
                     replacing, extra={"model_version": predictor.version})
            return predictor


def unusable_model(model_dir: Path, version: str | None, error: Exception) -> str:
    """One line for the log: which version in which directory cannot be loaded, why, and what fixes it."""
    reason = " ".join(str(error).split())[:300] or "no detail"
    return (f"the model {version} in {model_dir} cannot be loaded ({type(error).__name__}: {reason}); tickets wait "
            f"pending until {model_dir}/CURRENT names a good version: run `furiwake train`, or "
            "`furiwake model rollback` to the previous one")


__all__ = ["CurrentModel", "NoModelError", "unusable_model"]
