"""Alembic: one head; an empty database upgrades to head and back down, on PostgreSQL and SQLite; the models
and the migrations describe the same schema."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from core.db import make_engine
from core.migrate import alembic_config, downgrade, upgrade
from core.orm import Base

TABLES = {"tickets", "agents", "api_tokens", "corrections", "ticket_events", "inbound_emails", "webhook_nonces"}


def test_single_head():
    assert len(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()) == 1


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("empty_postgres_url")


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_to_head_and_back_down(empty_url):
    upgrade(empty_url)
    assert TABLES <= _tables(empty_url)
    downgrade(empty_url, "base")
    assert _tables(empty_url) == set()
    upgrade(empty_url)  # and up again: downgrade left nothing behind that blocks a re-run
    assert TABLES <= _tables(empty_url)


def test_models_match_migrations(empty_url):
    upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            differences = [d for d in compare_metadata(context, Base.metadata)
                           if not (isinstance(d, tuple) and d[0] in ("add_index", "remove_index"))]
    finally:
        engine.dispose()
    assert differences == []
