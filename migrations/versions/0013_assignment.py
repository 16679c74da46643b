"""assignment: agents' routes (skills), availability and cap; when a ticket's assignee got it (core/assignment.py)

Plain ADD COLUMN / DROP COLUMN on every backend, never batch mode: rebuilding `tickets` on SQLite would renumber its
rowids under the search index (0012_search).

Revision ID: 0013_assignment
Revises: 0012_search
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_assignment"
down_revision: str | None = "0012_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("available", sa.Boolean(), nullable=False, server_default=sa.text("true")))
    op.add_column("agents", sa.Column("max_open", sa.Integer()))
    op.add_column("agents", sa.Column("last_assigned_at", sa.DateTime(timezone=True)))
    op.add_column("tickets", sa.Column("assigned_at", sa.DateTime(timezone=True)))
    op.create_index("ix_tickets_assigned_status", "tickets", ["assigned_agent_id", "status"])
    op.create_table(
        "agent_routes",
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("route", sa.String(16), primary_key=True),
        sa.CheckConstraint("route IN ('Account', 'Payment', 'Other')", name="ck_agent_routes_route"),
    )


def downgrade() -> None:
    op.drop_table("agent_routes")
    op.drop_index("ix_tickets_assigned_status", table_name="tickets")
    op.drop_column("tickets", "assigned_at")
    op.drop_column("agents", "last_assigned_at")
    op.drop_column("agents", "max_open")
    op.drop_column("agents", "available")
