"""agents: session_epoch, so signing out or deactivating ends every session cookie of that agent server-side

Revision ID: 0005_agent_sessions
Revises: 0004_tickets_model_version
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_agent_sessions"
down_revision: str | None = "0004_tickets_model_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a column's constraints in place; on PostgreSQL this is a plain ADD COLUMN.
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("session_epoch")
