"""The app's one Runtime (engine, sessions, Celery sender) and the request's one unit of work.

create_app builds the Runtime from Settings, never at import time, so tests can build as many apps as they like.
A view (or the decorator around it: api.access.agents_only, api.agents.auth.login_required) opens the request's
unit of work with `with unit_of_work() as session:`; the outermost `with` commits when its block ends and rolls
back if it raises, and any `with` or `get_session()` inside it joins that same transaction. The session is closed
when the request ends, rolling back whatever nothing committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import begin_as_writer
from core.runtime import Runtime

EXTENSION = "furiwake"
_DEPTH = "db_unit_depth"
_AFTER_COMMIT = "db_after_commit"


def init_app(app: Flask, settings: Settings) -> Runtime:
    """Build the Runtime (lazy: no database or broker connection yet) once per Flask app."""
    runtime = Runtime.build(settings)
    app.extensions[EXTENSION] = runtime
    app.teardown_appcontext(close_session)
    return runtime


def current_runtime() -> Runtime:
    return current_app.extensions[EXTENSION]


def get_session() -> Session:
    """The request's session, opened on first use and shared by every caller during the request; its transaction
    begins with the first statement. Read-only views may use it alone; what writes goes through unit_of_work()."""
    if "db_session" not in g:
        g.db_session = current_runtime().sessions()
    return g.db_session


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """The request's unit of work: the outermost `with` commits at its end (rolls back on an error); inner ones
    join it, so a decorator and its view share one transaction."""
    session = get_session()
    depth = g.get(_DEPTH, 0)
    if depth == 0 and not session.in_transaction():
        begin_as_writer(session)  # on SQLite, the write lock up front (core.db says why)
    setattr(g, _DEPTH, depth + 1)
    try:
        yield session
        if depth == 0:
            session.commit()
    except BaseException:
        if depth == 0:
            session.rollback()
            g.pop(_AFTER_COMMIT, None)
        raise
    finally:
        setattr(g, _DEPTH, depth)
    if depth == 0:
        for action in g.pop(_AFTER_COMMIT, []):
            action()


def after_commit(action: Callable[[], None]) -> None:
    """Run `action` once the request's unit of work has committed (at once outside one; never if it rolls back).

    For telling a worker about a row: told from inside a decorator's unit of work (agents_only, login_required),
    before the commit, the worker can look before the row is visible, find nothing and drop the task."""
    if g.get(_DEPTH, 0) == 0:
        action()
    else:
        g.setdefault(_AFTER_COMMIT, []).append(action)


def close_session(_error: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    g.pop(_DEPTH, None)
    g.pop(_AFTER_COMMIT, None)
    if session is not None:
        session.close()
