"""core.runtime.Runtime: one per entry point, and its unit of work (commit at the end, roll back on error, and on
SQLite the write lock taken up front)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from core.config import Settings
from core.orm import Agent
from core.runtime import Runtime


@pytest.fixture
def runtime(sqlite_url: str, make_settings: Callable[..., Settings]) -> Runtime:
    built = Runtime.build(make_settings(database_url=sqlite_url))
    yield built
    built.dispose()


def _other_connection(runtime: Runtime) -> sqlite3.Connection:
    """A second process's view of the same file, with no patience for locks."""
    return sqlite3.connect(str(make_url(runtime.settings.database_url).database), timeout=0.1,
                           isolation_level=None)


def _agents(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Agent)) or 0)


def test_a_unit_of_work_commits_at_its_end_and_rolls_back_on_an_error(runtime: Runtime) -> None:
    with runtime.unit_of_work() as session:
        session.add(Agent(email="a@example.jp", password_hash="x", active=True))
    assert _agents(runtime) == 1
    with pytest.raises(RuntimeError), runtime.unit_of_work() as session:
        session.add(Agent(email="b@example.jp", password_hash="x", active=True))
        session.flush()
        raise RuntimeError("the view failed")
    assert _agents(runtime) == 1


def test_a_sqlite_unit_of_work_holds_the_write_lock_from_its_start(runtime: Runtime) -> None:
    """A deferred BEGIN would read first and fail at once with "database is locked" when it later writes after
    another process committed; a unit of work takes the lock up front, so the other writer waits instead."""
    other = _other_connection(runtime)
    try:
        with runtime.unit_of_work() as session:
            session.execute(select(1))  # nothing written yet
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at the commit
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_a_plain_read_session_does_not_block_a_writer(runtime: Runtime) -> None:
    other = _other_connection(runtime)
    try:
        with runtime.sessions() as session:
            session.execute(select(1))
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()
