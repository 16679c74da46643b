"""search: character-trigram indexes over tickets' subject, body and customer address (core/search.py)

PostgreSQL: the pg_trgm extension (trusted since PostgreSQL 13: a database owner may create it) and GIN indexes.
SQLite: an FTS5 table with the trigram tokenizer (SQLite 3.34+) over subject and body, external content (the
tickets table's rowid), kept in step by triggers. A later migration that rebuilds the tickets table on SQLite (batch
mode copies it, which renumbers rowids) must run `INSERT INTO tickets_fts(tickets_fts) VALUES ('rebuild')`.

Revision ID: 0012_search
Revises: 0011_webhooks
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_search"
down_revision: str | None = "0011_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM_COLUMNS = ("subject", "body", "customer_email")

SQLITE_UPGRADE = (
    "CREATE VIRTUAL TABLE tickets_fts USING fts5(subject, body, content='tickets', content_rowid='rowid',"
    " tokenize='trigram')",
    # Only a change of the indexed text touches the index: a status or route write (every routed ticket) does not.
    "CREATE TRIGGER tickets_fts_insert AFTER INSERT ON tickets BEGIN"
    " INSERT INTO tickets_fts(rowid, subject, body) VALUES (new.rowid, new.subject, new.body); END",
    "CREATE TRIGGER tickets_fts_delete AFTER DELETE ON tickets BEGIN"
    " INSERT INTO tickets_fts(tickets_fts, rowid, subject, body) VALUES ('delete', old.rowid, old.subject, old.body);"
    " END",
    "CREATE TRIGGER tickets_fts_update AFTER UPDATE OF subject, body ON tickets BEGIN"
    " INSERT INTO tickets_fts(tickets_fts, rowid, subject, body) VALUES ('delete', old.rowid, old.subject, old.body);"
    " INSERT INTO tickets_fts(rowid, subject, body) VALUES (new.rowid, new.subject, new.body); END",
    "INSERT INTO tickets_fts(tickets_fts) VALUES ('rebuild')",
)
SQLITE_DOWNGRADE = (
    "DROP TRIGGER IF EXISTS tickets_fts_update",
    "DROP TRIGGER IF EXISTS tickets_fts_delete",
    "DROP TRIGGER IF EXISTS tickets_fts_insert",
    "DROP TABLE IF EXISTS tickets_fts",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for column in TRIGRAM_COLUMNS:
            op.execute(f"CREATE INDEX ix_tickets_{column}_trgm ON tickets USING gin ({column} gin_trgm_ops)")
    elif dialect == "sqlite":
        for statement in SQLITE_UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for column in TRIGRAM_COLUMNS:
            op.execute(f"DROP INDEX IF EXISTS ix_tickets_{column}_trgm")
        # The extension stays: other objects of the database may use it, and dropping it needs more rights.
    elif dialect == "sqlite":
        for statement in SQLITE_DOWNGRADE:
            op.execute(statement)
