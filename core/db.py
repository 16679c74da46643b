"""Engine and session factory, one per process (built from Settings, never at import time).

Transactions are opened by the entry points only, through core.runtime.Runtime.unit_of_work().
"""

from __future__ import annotations

import select
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError
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
    engine = create_engine(url, pool_size=5, max_overflow=10, connect_args={"connect_timeout": 5})
    _ping_when_in_doubt(engine)
    return engine


# A pooled connection idle this long is pinged before use even when nothing says it died (a firewall or a NAT that
# dropped it silently). Under load connections come back within milliseconds and are never pinged for this.
PING_AFTER_IDLE_SECONDS = 10.0
_IDLE_SINCE = "furiwake_idle_since"


def _ping_when_in_doubt(engine: Engine) -> None:
    """SQLAlchemy's pool_pre_ping, only for a pooled connection that may be dead: one with something to read,
    or idle for PING_AFTER_IDLE_SECONDS.

    pool_pre_ping pings on every checkout: a round trip to PostgreSQL on every request and task (one of the five
    an intake request made, with its CPU here and in the server). A server that ends a connection (a restart,
    idle_session_timeout, pgbouncer, pg_terminate_backend) first sends its FATAL message or closes the socket, so
    a dead connection is readable, which a poll() of its socket sees without a round trip, while an idle live one
    has nothing to say (furiwake uses no LISTEN). Such a connection is pinged as pre-ping would, and a failed ping
    replaces every pooled connection as pre-ping does (InvalidatePoolError): the request goes on with a new one.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_in_doubt(dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None:
            return  # not checked in since it connected (info is cleared on a reconnect): fresh, as pre-ping trusts
        if time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS and not _has_input(dbapi_connection):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise InvalidatePoolError() from error
            raise


def _has_input(dbapi_connection: Any) -> bool:
    """Whether the server has sent something (a FATAL message, an end of file) to a connection that asked
    nothing; a connection whose socket cannot be polled counts as suspect."""
    try:
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # noqa: BLE001 - closed, broken: let the ping decide
        return True


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

