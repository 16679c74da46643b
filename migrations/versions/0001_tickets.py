"""tickets

Revision ID: 0001_tickets
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_tickets"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("reference", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(500)),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("customer_name", sa.String(200)),
        sa.Column("customer_email", sa.String(320)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("route", sa.String(16)),
        sa.Column("confidence", sa.Float()),
        sa.Column("score_account", sa.Float()),
        sa.Column("score_payment", sa.Float()),
        sa.Column("score_other", sa.Float()),
        sa.Column("model_version", sa.String(64)),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("message_id", sa.String(998)),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True)),
        sa.Column("routed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("channel IN ('web', 'email', 'api')", name="ck_tickets_channel"),
        sa.CheckConstraint(
            "status IN ('received', 'queued', 'routed', 'needs_review', 'failed')", name="ck_tickets_status"
        ),
        sa.CheckConstraint("route IS NULL OR route IN ('Account', 'Payment', 'Other')", name="ck_tickets_route"),
        sa.UniqueConstraint("reference", name="uq_tickets_reference"),
        sa.UniqueConstraint("idempotency_key", name="uq_tickets_idempotency_key"),
        sa.UniqueConstraint("message_id", name="uq_tickets_message_id"),
    )
    op.create_index("ix_tickets_route_status_created", "tickets", ["route", "status", "created_at", "id"])
    op.create_index("ix_tickets_status_created", "tickets", ["status", "created_at", "id"])
    op.create_index("ix_tickets_created", "tickets", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_created", table_name="tickets")
    op.drop_index("ix_tickets_status_created", table_name="tickets")
    op.drop_index("ix_tickets_route_status_created", table_name="tickets")
    op.drop_table("tickets")
