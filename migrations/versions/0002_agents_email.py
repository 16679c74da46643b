"""agents, api tokens, corrections, ticket history, inbound e-mail log; tickets can be assigned and resolved

Revision ID: 0002_agents_email
Revises: 0001_tickets
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_agents_email"
down_revision: str | None = "0001_tickets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROUTES = "('Account', 'Payment', 'Other')"


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("email", name="uq_agents_email"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_agent_id", "api_tokens", ["agent_id"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("assigned_agent_id", sa.Integer()))
        batch.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True)))
        batch.create_foreign_key("fk_tickets_assigned_agent", "agents", ["assigned_agent_id"], ["id"],
                                 ondelete="SET NULL")
        batch.drop_constraint("ck_tickets_status", type_="check")
        batch.create_check_constraint(
            "ck_tickets_status", "status IN ('received', 'queued', 'routed', 'needs_review', 'failed', 'resolved')"
        )
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Uuid(), sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("predicted_route", sa.String(16)),
        sa.Column("corrected_route", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(64)),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"predicted_route IN {ROUTES} OR predicted_route IS NULL", name="ck_corrections_predicted"),
        sa.CheckConstraint(f"corrected_route IN {ROUTES}", name="ck_corrections_corrected"),
    )
    op.create_index("ix_corrections_ticket_id", "corrections", ["ticket_id"])
    op.create_index("ix_corrections_created", "corrections", ["created_at"])
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Uuid(), sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ticket_events_ticket_created", "ticket_events", ["ticket_id", "created_at"])
    op.create_table(
        "inbound_emails",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(128)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("ticket_id", sa.Uuid(), sa.ForeignKey("tickets.id", ondelete="SET NULL")),
        sa.Column("sender", sa.String(998)),
        sa.Column("subject", sa.String(998)),
        sa.Column("attachments", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("outcome IN ('accepted', 'duplicate', 'rejected')", name="ck_inbound_emails_outcome"),
    )
    op.create_index("ix_inbound_emails_dedupe_key", "inbound_emails", ["dedupe_key"])
    op.create_index("ix_inbound_emails_received", "inbound_emails", ["received_at"])
    op.create_table(
        "webhook_nonces",
        sa.Column("token", sa.String(200), primary_key=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhook_nonces_seen_at", "webhook_nonces", ["seen_at"])


def downgrade() -> None:
    op.drop_table("webhook_nonces")
    op.drop_table("inbound_emails")
    op.drop_table("ticket_events")
    op.drop_table("corrections")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("ck_tickets_status", type_="check")
        batch.create_check_constraint(
            "ck_tickets_status", "status IN ('received', 'queued', 'routed', 'needs_review', 'failed')"
        )
        batch.drop_constraint("fk_tickets_assigned_agent", type_="foreignkey")
        batch.drop_column("resolved_at")
        batch.drop_column("assigned_agent_id")
    op.drop_table("api_tokens")
    op.drop_table("agents")
