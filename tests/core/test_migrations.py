"""Alembic: one head; an empty database upgrades to head and back down, on PostgreSQL and SQLite; the models
(core/orm.py) and the migrations describe the same schema, tables, columns, types, indexes and unique constraints,
for every table the models declare."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from core.db import make_engine
from core.migrate import alembic_config, downgrade, upgrade
from core.orm import Base
from core.search import include_object, is_search_object
from tests.support.backends import BACKENDS

# Every table the models declare: a table added to core/orm.py is checked without touching this file.
TABLES = frozenset(Base.metadata.tables)
# name -> (columns, unique, partial): what a query plan and an INSERT's outcome depend on.
Indexes = dict[str, tuple[tuple[str, ...], bool, bool]]


def test_single_head():
    assert len(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()) == 1


@pytest.fixture(params=BACKENDS)
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("empty_postgres_url")


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        names = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
        return {name for name in names if not is_search_object(name)}  # checked by tests/core/test_search.py
    finally:
        engine.dispose()


def test_upgrade_to_head_and_back_down(empty_url):
    upgrade(empty_url)
    assert _tables(empty_url) == TABLES
    downgrade(empty_url, "base")
    assert _tables(empty_url) == set()
    upgrade(empty_url)  # and up again: downgrade left nothing behind that blocks a re-run
    assert _tables(empty_url) == TABLES


def test_models_match_migrations(empty_url):
    """Alembic's own comparison, indexes and column types included (what `alembic revision --autogenerate` would
    write): an empty list means no migration is missing."""
    upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": include_object})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def _declared_indexes(table: sa.Table) -> Indexes:
    declared: Indexes = {}
    for index in table.indexes:
        partial = any(index.dialect_options[dialect].get("where") is not None for dialect in ("postgresql", "sqlite"))
        declared[str(index.name)] = (tuple(column.name for column in index.columns), bool(index.unique), partial)
    return declared


def _declared_unique_constraints(table: sa.Table) -> dict[str, tuple[str, ...]]:
    return {str(constraint.name): tuple(column.name for column in constraint.columns)
            for constraint in table.constraints if isinstance(constraint, sa.UniqueConstraint)}  # fmt: skip


def _migrated_indexes(inspector: Any, table: str) -> Indexes:
    migrated: Indexes = {}
    for index in inspector.get_indexes(table):
        if index.get("duplicates_constraint"):  # PostgreSQL's index behind a UNIQUE constraint: compared below
            continue
        if is_search_object(index["name"]):  # dialect-specific, not in the models: tests/core/test_search.py
            continue
        options = index.get("dialect_options", {})
        partial = any(options.get(f"{dialect}_where") is not None for dialect in ("postgresql", "sqlite"))
        migrated[index["name"]] = (tuple(index["column_names"]), bool(index["unique"]), partial)
    return migrated


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_index_and_unique_constraint_is_declared_and_migrated(empty_url, table):
    """By name, columns (in order), uniqueness and partiality, in both directions; Alembic's comparison above
    overlooks some of these (a partial index's predicate, a unique constraint SQLite reflects without its name)."""
    upgrade(empty_url)
    model = Base.metadata.tables[table]
    engine = make_engine(empty_url)
    try:
        inspector = sa.inspect(engine)
        migrated_indexes = _migrated_indexes(inspector, table)
        migrated_uniques = {str(c["name"]): tuple(c["column_names"]) for c in inspector.get_unique_constraints(table)}
    finally:
        engine.dispose()
    assert migrated_indexes == _declared_indexes(model)
    assert migrated_uniques == _declared_unique_constraints(model)
