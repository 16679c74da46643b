"""The one runtime object each entry point builds from Settings: engine, session factory, Celery app.

An entry point (the WSGI app, a Celery worker or beat, a CLI command) builds exactly one Runtime from one Settings
and hands it down; nothing below an entry point reads the environment or builds an engine of its own.

The transaction rule: service functions take a `Session` and never commit; the entry point wraps each request, task
or command in one `unit_of_work()`, which commits when the block ends and rolls back if it raises. A long workflow
(a retrain, which trains for minutes) runs several units of work one after the other, never a transaction held
across the training itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from celery import Celery
from kombu import Producer
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
    _producers: threading.local = field(default_factory=threading.local, repr=False)

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

    def producer(self) -> Producer:
        """This thread's producer for publishing tasks, kept for the Runtime's life.

        Celery's producer pool hands out a producer per publish and, on its return, unbinds it from its
        connection, so the next publish binds it again: about a third of what publishing a ticket cost the API.
        A producer kept bound publishes over the same connection and channel that the pool would hand back (a
        pooled connection stays open between loans), and redis-py reconnects it after a broker outage alike. One
        per thread, as kombu's producers are not thread-safe; its connection comes with the app's broker settings
        (core.messaging.make_celery: one attempt, short timeouts) and connects on its first publish.
        """
        producer: Producer | None = getattr(self._producers, "producer", None)
        if producer is None:
            producer = self._producers.producer = self.celery.amqp.Producer(self.celery.connection_for_write())
        return producer

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
        self._producers = threading.local()  # the parent's broker connections stay the parent's

    def dispose(self) -> None:
        self.engine.dispose()
        producer: Producer | None = getattr(self._producers, "producer", None)
        if producer is not None:  # this thread's; those of other threads close as they are collected
            self._producers = threading.local()
            producer.connection.close()
