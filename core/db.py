"""Engine and session factory, one per process (built from Settings, never at import time).

Transactions are opened by the entry points only, through core.runtime.Runtime.unit_of_work().
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(database_url: str) -> Engine:
    """PostgreSQL via psycopg 3; SQLite in WAL mode with a busy timeout so API, worker and beat can share it."""
    url = database_url
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # SQLAlchemy's pysqlite recipe: let SQLAlchemy emit BEGIN itself, so SAVEPOINTs nest properly
            # (the driver's own transaction handling commits on a savepoint's RELEASE).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):  # type: ignore[no-untyped-def]
            writer = connection.get_execution_options().get(WRITER_OPTION, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

        return engine
    # connect_timeout: /readyz and requests fail fast on an unreachable database instead of hanging.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args={"connect_timeout": 5})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


WRITER_OPTION = "furiwake_writer"


def begin_as_writer(session: Session) -> None:
    """Start the session's transaction as one that will write: on SQLite, `BEGIN IMMEDIATE`.

    SQLite's default deferred BEGIN starts as a reader and asks for the write lock at the first write; in WAL mode,
    if another process committed in between, that upgrade fails at once with "database is locked" (the busy
    timeout does not apply to it). Taking the write lock up front makes a writer wait its turn (up to the busy
    timeout) instead. PostgreSQL ignores the option. Call it before the session's first statement.
    """
    session.connection(execution_options={WRITER_OPTION: True})

