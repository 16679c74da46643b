"""The model a classify worker process serves: the registry's champion, loaded after the fork.

A model loaded before Celery forks hangs the child on its first predict, so nothing here loads at construction.
The champion is read from the database (core/registry.py), so a promotion or a rollback made on any machine reaches
this one: when it names a new version, the next batch fetches it into MODEL_DIR if this machine has no good copy
(core/model_store.py), then loads it (hot reload; docs/retraining.md). Without a database (a CurrentModel used
outside a worker process, with no worker context installed), MODEL_DIR/CURRENT names the version, as before.

Cold start and reload (docs/operations.md, "Cold start"; bench/coldstart.py): a version serves as soon as XLA has
compiled its first shape (serving.predictor), and the other shapes compile on a background thread meanwhile. A new
champion is loaded on a thread of its own while the old version keeps serving, then swapped in; in a worker child a
watcher thread looks for one every WATCH_SECONDS, so a promotion does not wait for the next batch to be noticed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core import metrics, model_store, registry
from core.artifacts import NoModelError, current_version, resolve, set_current
from core.orm import ModelVersion
from worker.memory import release_free_heap

log = logging.getLogger(__name__)
RELOAD_CHECK_SECONDS = 2.0
RELOAD_RETRY_SECONDS = 30.0
EVICT_CHECK_SECONDS = 10.0  # how often pruned versions are looked for in this machine's cache
WATCH_SECONDS = 1.0  # a worker child's watcher: one indexed champion lookup a second, off the batch's thread
# False: the path before bench/coldstart.py (every shape compiled before a version serves, a new champion loaded on
# the thread of the batch that noticed it); kept for that benchmark's reference figures.
WARM_UP_IN_BACKGROUND = True

UnitOfWork = Callable[[], AbstractContextManager[Session]]


class CurrentModel:
    def __init__(self, model_dir: Path, reader: UnitOfWork | None = None, writer: UnitOfWork | None = None) -> None:
        """`reader` opens a read-only session and `writer` a unit of work (Runtime.sessions.begin and
        Runtime.unit_of_work); without them, the worker context's Runtime when one is installed, else no database:
        the version CURRENT names."""
        self.model_dir = model_dir
        self._reader = reader
        self._writer = writer
        self._published = False  # versions found only on this disk uploaded once per process (publish_local)
        self._evicted_at = 0.0
        self._predictor: Any = None  # serving.predictor.Predictor, imported lazily (TensorFlow)
        self._checked_at = 0.0
        self._failed_version: str | None = None  # a version that failed to load, and when: not retried at once
        self._failed_at = 0.0
        self._failure = ""  # the message of that failure, repeated while it is not retried
        self._lock = threading.RLock()
        self._loading: str | None = None  # the version a background thread is loading now
        self._watch = False  # a worker child watches the champion on a thread of its own (reset_after_fork)
        self._watcher: threading.Thread | None = None
        self._closed = threading.Event()
        self.on_serve: Callable[[], None] | None = None  # called after each swap (a worker child: heartbeat.wake)

    def close(self) -> None:
        """Stop the watcher thread (a child exiting, a test ending); the loaded version stops compiling."""
        self._closed.set()
        predictor = self._predictor
        if predictor is not None:
            predictor.stop_compiling()

    def reset_after_fork(self) -> None:
        """A forked child starts with nothing loaded: its parent's model, if any, is not usable after the fork.
        Only a worker child calls this; it also watches the registry on a thread once it serves (watch())."""
        self._predictor = None
        self._loading = None
        self._watcher = None
        self._watch = WARM_UP_IN_BACKGROUND
        self._closed = threading.Event()
        self._checked_at = 0.0
        self._failed_version = None
        self._published = False
        self._evicted_at = 0.0

    @property
    def version(self) -> str | None:
        """The version this process serves now (None before one is loaded); never loads (the heartbeat's view)."""
        predictor = self._predictor
        return str(predictor.version) if predictor is not None else None

    def _database(self) -> tuple[UnitOfWork, UnitOfWork] | None:
        if self._reader is not None and self._writer is not None:
            return self._reader, self._writer
        from worker import context  # not at import: worker.context imports this module

        try:
            runtime = context.current().runtime
        except RuntimeError:
            return None
        return runtime.sessions.begin, runtime.unit_of_work

    def _wanted(self, now: float) -> tuple[str | None, Path | None]:
        """The version to serve and, once known, where its files are (None: MODEL_DIR/CURRENT, no database)."""
        database = self._database()
        if database is None:
            return current_version(self.model_dir), None
        reader, writer = database
        if not self._published:
            with model_store.locked(self.model_dir), writer() as session:
                registry.publish_local(session, self.model_dir)
            self._published = True
        current = current_version(self.model_dir)
        with reader() as session:
            row = registry.champion(session)
            champion = row.version if row is not None else None
            # CURRENT naming a version the registry does not know: `furiwake train` made it current here.
            adopt = current is not None and current != champion and session.get(ModelVersion, current) is None
        if adopt or (champion is None and current is not None):
            try:
                with writer() as session:
                    champion = registry.sync(session, self.model_dir)
            except ValueError as exc:  # a damaged meta.json (MalformedMetaError) cannot be registered
                log.debug("could not register %s from %s/CURRENT: %s", current, self.model_dir, exc)
                return current, None  # loaded from this disk as without a registry: its failure names the file
        self._evict(reader, champion)
        if champion is None:
            return None, None
        if self._predictor is not None and self._predictor.version == champion or self._loading == champion:
            return champion, None
        if self._failed_version == champion and now - self._failed_at < RELOAD_RETRY_SECONDS:
            return champion, None  # failed to load a moment ago: not fetched again before the retry
        with reader() as session:
            path = model_store.fetch(session, champion, self.model_dir)
        if current != champion:
            try:  # this machine's CURRENT follows the champion, for `furiwake predict` and the like
                set_current(self.model_dir, champion)
            except OSError as exc:
                log.debug("could not update %s/CURRENT: %s", self.model_dir, exc)
        return champion, path

    def _evict(self, reader: UnitOfWork, champion: str | None) -> None:
        now = time.monotonic()
        if now - self._evicted_at < EVICT_CHECK_SECONDS:
            return
        self._evicted_at = now
        with reader() as session:
            model_store.evict(session, self.model_dir, [champion, self.version, current_version(self.model_dir)])

    def predictor(self):  # type: ignore[no-untyped-def]
        """The champion, reloaded when the registry names another; raises NoModelError if none can serve.

        A promotion or a rollback reaches a worker child within WATCH_SECONDS (its watcher thread; elsewhere, at
        the next call after RELOAD_CHECK_SECONDS) plus the load itself. The new model is loaded, and its first shape
        compiled, on a thread of its own while the old one keeps serving, then replaces it; the batch in hand is
        routed by the model it started with (each ticket records that version). If the
        new version cannot be loaded, the old model keeps serving and the load is tried again after
        RELOAD_RETRY_SECONDS: a bad artifact must never stop routing.

        With no model loaded yet, a version that cannot be loaded (a damaged meta.json, a truncated model.keras)
        is reported as NoModelError naming the directory and the fix, like a missing model: the tickets wait
        pending instead of every batch failing with a traceback, and a good version is picked up as soon as
        CURRENT names it (or after RELOAD_RETRY_SECONDS, if the same version is repaired in place).

        The database being unreachable is no reason to stop routing: the loaded model keeps serving.
        """
        predictor, watcher = self._predictor, self._watcher
        if predictor is not None and watcher is not None and watcher.is_alive():
            return predictor  # the watcher looks for a new champion: no lookup, no lock, on the batch's thread
        now = time.monotonic()
        with self._lock:
            if self._predictor is not None and now - self._checked_at < RELOAD_CHECK_SECONDS:
                return self._predictor
            return self._check(now)

    def _check(self, now: float):  # type: ignore[no-untyped-def]
        """predictor()'s lookup, under the lock: the predictor to use now, a new version loading meanwhile."""
        self._checked_at = now
        try:
            wanted, path = self._wanted(now)
        except NoModelError as exc:
            if self._predictor is not None:
                log.error("%s; %s keeps serving", exc, self._predictor.version)
                return self._predictor
            raise
        except Exception as exc:  # noqa: BLE001 - a database or disk error: keep serving what is loaded
            if self._predictor is None:
                raise NoModelError(f"the champion model cannot be looked up or fetched into {self.model_dir} "
                                   f"({type(exc).__name__}: {exc})") from exc
            log.warning("could not check the champion model: %s; %s keeps serving", exc,
                        self._predictor.version, exc_info=True)
            return self._predictor
        if self._predictor is not None and (self._predictor.version == wanted or wanted is None):
            return self._predictor
        if self._loading is not None:
            return self._predictor  # a load is under way; the next check after it looks again
        if self._failed_version == wanted and now - self._failed_at < RELOAD_RETRY_SECONDS:
            if self._predictor is not None:
                return self._predictor
            raise NoModelError(self._failure)
        if self._predictor is not None and WARM_UP_IN_BACKGROUND:
            self._load_in_background(wanted, path)
            return self._predictor
        started = time.monotonic()
        try:
            predictor = self._build(path)
        except NoModelError:
            raise  # nothing there yet: resolve's message names the directory and `furiwake train`
        except Exception as exc:  # noqa: BLE001 - any damage in the artifact: report it, keep the worker up
            self._failed(wanted, now, exc)
            if self._predictor is None:
                raise NoModelError(self._failure) from exc
            return self._predictor
        self._serve(predictor, started)
        return predictor

    def _build(self, path: Path | None):  # type: ignore[no-untyped-def]
        """A Predictor that can route: its first shape compiled (the rest after _serve), or all of them on the old
        path."""
        from serving.predictor import Predictor

        predictor = Predictor(path if path is not None else resolve(None, self.model_dir), warm_up=False)
        if WARM_UP_IN_BACKGROUND:
            predictor.compile_first_shapes()
        else:
            predictor.compile_all_shapes()
        return predictor

    def _failed(self, wanted: str | None, now: float, exc: Exception) -> None:
        first = self._failed_version != wanted
        self._failed_version, self._failed_at = wanted, now
        self._failure = unusable_model(self.model_dir, wanted, exc)
        # The traceback once per version, at debug: the one-line message says what is wrong and the fix.
        log.debug("loading model %s failed", wanted, exc_info=first)
        if self._predictor is not None:
            log.error("%s; %s keeps serving, retrying in %.0f s", self._failure, self._predictor.version,
                      RELOAD_RETRY_SECONDS)

    def _serve(self, predictor, started: float) -> None:  # type: ignore[no-untyped-def]
        """Swap `predictor` in (under the lock): from here on batches use it, and it is what the heartbeat reports
        (core/heartbeats.py, /readyz) — only now, when it can route. Its other shapes compile meanwhile."""
        previous = self._predictor
        self._predictor = predictor
        self._failed_version = None
        if previous is not None:
            previous.stop_compiling()
        metrics.worker_model(predictor.version, previous.version if previous is not None else None)
        pending = len(predictor.pending_shapes())
        replacing = f", replacing {previous.version}" if previous is not None else ""
        compiling = f"; {pending} more shapes compiling in the background" if pending else ""
        log.info("serving model %s (loaded in %.1f s%s%s)", predictor.version, time.monotonic() - started,
                 replacing, compiling, extra={"model_version": predictor.version})
        if self.on_serve is not None:
            self.on_serve()
        if pending:
            predictor.compile_rest_in_background(lambda seconds: _all_compiled(predictor, seconds))
        else:
            release_free_heap()
        if self._watch and (self._watcher is None or not self._watcher.is_alive()):
            self._watcher = threading.Thread(target=self._watch_champion, name="model-watch", daemon=True)
            self._watcher.start()

    def _load_in_background(self, wanted: str | None, path: Path | None) -> None:
        """Load and warm `wanted` on a thread while the current version keeps serving; swap it in when it can route."""
        self._loading = wanted

        def load() -> None:
            started = time.monotonic()
            try:
                predictor = self._build(path)
            except Exception as exc:  # noqa: BLE001 - the old version keeps serving; retried after RELOAD_RETRY
                with self._lock:
                    self._loading = None
                    self._failed(wanted, time.monotonic(), exc)
                return
            with self._lock:
                self._loading = None
                self._serve(predictor, started)

        threading.Thread(target=load, name=f"load-{wanted}", daemon=True).start()

    def _watch_champion(self) -> None:
        """A worker child's thread: look for a new champion every WATCH_SECONDS, traffic or not."""
        while not self._closed.wait(WATCH_SECONDS):
            try:
                with self._lock:
                    self._check(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - the loaded version keeps serving; the next look retries
                log.debug("champion check failed: %s", exc)


def _all_compiled(predictor, seconds: float) -> None:  # type: ignore[no-untyped-def]
    log.info("model %s: all %d shapes compiled (%.1f s in the background)", predictor.version,
             len(predictor.shapes()), seconds)
    release_free_heap()  # XLA's and the load's working memory, and a replaced version's (worker/memory.py)


def unusable_model(model_dir: Path, version: str | None, error: Exception) -> str:
    """One line for the log: which version in which directory cannot be loaded, why, and what fixes it."""
    reason = " ".join(str(error).split())[:300] or "no detail"
    return (f"the model {version} in {model_dir} cannot be loaded ({type(error).__name__}: {reason}); tickets wait "
            f"pending until {model_dir}/CURRENT names a good version: run `furiwake train`, or "
            "`furiwake model rollback` to the previous one")


__all__ = ["CurrentModel", "NoModelError", "unusable_model"]
