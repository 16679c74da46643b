"""messages: a ticket's conversation after its first message (replies, notes, acknowledgements, automatic mail),
and the outbox of mail to send

Revision ID: 0006_messages
Revises: 0005_agent_sessions
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_messages"
down_revision: str | None = "0005_agent_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "'customer', 'agent_reply', 'note', 'acknowledgement', 'automatic'"
DELIVERY = "'pending', 'sent', 'failed', 'bounced'"


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Uuid(), sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="SET NULL")),
        sa.Column("sender", sa.String(320)),
        sa.Column("recipient", sa.String(320)),
        sa.Column("subject", sa.String(998)),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("language", sa.String(8)),
        sa.Column("message_id", sa.String(998)),
        sa.Column("in_reply_to", sa.String(998)),
        sa.Column("references", sa.Text()),
        sa.Column("automatic", sa.String(200)),
        sa.Column("delivery", sa.String(16)),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("message_id", name="uq_messages_message_id"),
        sa.CheckConstraint(f"kind IN ({KINDS})", name="ck_messages_kind"),
        sa.CheckConstraint(f"delivery IS NULL OR delivery IN ({DELIVERY})", name="ck_messages_delivery"),
    )
    op.create_index("ix_messages_ticket_created", "messages", ["ticket_id", "created_at", "id"])
    op.create_index("ix_messages_delivery_created", "messages", ["delivery", "created_at"])
    op.create_index("ix_messages_recipient_created", "messages", ["recipient", "created_at"])


def downgrade() -> None:
    op.drop_table("messages")
