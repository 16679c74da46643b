"""SLA: tickets.first_response_at, when an agent first answered the customer (core/sla.py)

Filled for tickets answered before this revision from their first agent reply, so the SLA dashboard's history does
not start empty.

Revision ID: 0016_first_response
Revises: 0015_rules
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_first_response"
down_revision: str | None = "0015_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("first_response_at", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE tickets SET first_response_at = (SELECT MIN(m.created_at) FROM messages m"
        " WHERE m.ticket_id = tickets.id AND m.kind = 'agent_reply')"
    )


def downgrade() -> None:
    op.drop_column("tickets", "first_response_at")
