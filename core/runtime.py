"""The one runtime object each entry point builds from Settings: engine, session factory, Celery app.

An entry point (the WSGI app, a Celery worker or beat, a CLI command) builds exactly one Runtime from one Settings
and hands it down; nothing below an entry point reads the environment or builds an engine of its own.

The transaction rule: service functions take a `Session` and never commit; the entry point wraps each request, task
or command in one `unit_of_work()`, which commits when the block ends and rolls back if it raises. A long workflow
(a retrain, which trains for minutes) runs several units of work one after the other, never a transaction held
across the training itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.db import begin_as_writer, make_engine, make_session_factory
from core.messaging import make_celery


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    _celery: Celery | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Lazy: no database connection and no broker connection until first used."""
        engine = make_engine(settings.database_url)
        return cls(settings, engine, make_session_factory(engine))

    @property
    def celery(self) -> Celery:
        """The Celery app that publishes (built on first use: a CLI command that never sends needs none)."""
        if self._celery is None:
            self._celery = make_celery(self.settings)
        return self._celery

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction: commit when the block ends, roll back if it raises. It begins as a writer (on SQLite
        the write lock is taken up front: core.db.begin_as_writer says why)."""
        with self.sessions() as session, session.begin():
            begin_as_writer(session)
            yield session

    def reset_after_fork(self) -> None:
        """A forked child must not reuse its parent's pooled connections (superset's celery_app does the same)."""
        self.engine.dispose(close=False)

    def dispose(self) -> None:
        self.engine.dispose()
