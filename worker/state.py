"""What each worker process holds: a database engine and the loaded model, both created after the fork.

A model loaded before Celery forks hangs the child on its first predict, so nothing here runs at import time.
The predictor follows MODEL_DIR/CURRENT: when it names a new version, the next batch loads it (hot reload).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.artifacts import NoModelError, current_version, resolve
from core.config import Settings
from core.db import make_engine, make_session_factory

log = logging.getLogger(__name__)
RELOAD_CHECK_SECONDS = 2.0


class ProcessState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sessions: sessionmaker[Session] | None = None
        self._predictor: Any = None  # core.predictor.Predictor, imported lazily (TensorFlow)
        self._checked_at = 0.0
        self._lock = threading.Lock()

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self._sessions = make_session_factory(make_engine(self.settings.database_url))
        return self._sessions

    def reset_after_fork(self) -> None:
        """A forked child must not reuse its parent's pooled connections (superset's celery_app does the same)."""
        if self._sessions is not None:
            engine = self._sessions.kw["bind"]
            engine.dispose(close=False)
        self._sessions = None
        self._predictor = None
        self._checked_at = 0.0

    def predictor(self):  # type: ignore[no-untyped-def]
        """The current model, reloaded when MODEL_DIR/CURRENT changes; raises NoModelError if none exists yet."""
        now = time.monotonic()
        with self._lock:
            if self._predictor is not None and now - self._checked_at < RELOAD_CHECK_SECONDS:
                return self._predictor
            self._checked_at = now
            wanted = current_version(self.settings.model_dir)
            if self._predictor is not None and self._predictor.version == wanted:
                return self._predictor
            if wanted is None and self._predictor is not None:
                return self._predictor
            from core.predictor import Predictor

            path = resolve(None, self.settings.model_dir)
            started = time.monotonic()
            predictor = Predictor(path)
            previous = self._predictor.version if self._predictor is not None else None
            self._predictor = predictor
            log.info("model %s loaded in %.1f s (was %s)", predictor.version, time.monotonic() - started, previous)
            return predictor


__all__ = ["NoModelError", "ProcessState"]
