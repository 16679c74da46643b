"""rules before the model: rules, their saved versions, and on each ticket the rule that routed it beside the
model's own route, and the support address its first mail was sent to (core/rules.py)

tickets.rule_id has no foreign key constraint in the database: SQLite cannot add one to an existing table without a
rebuild, and rebuilding `tickets` would renumber the rowids under the search index (0012_search). A rule is never
deleted, only deactivated (core/rules.py), so the id stays meaningful.

Revision ID: 0015_rules
Revises: 0014_roles_language
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_rules"
down_revision: str | None = "0014_roles_language"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("sender", sa.String(320)),
        sa.Column("recipient", sa.String(320)),
        sa.Column("subject_contains", sa.String(500)),
        sa.Column("body_contains", sa.String(500)),
        sa.Column("channel", sa.String(16)),
        sa.Column("route", sa.String(16)),
        sa.Column("assignee_agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="SET NULL")),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Integer(), sa.ForeignKey("agents.id", ondelete="SET NULL")),
        sa.CheckConstraint("route IS NULL OR route IN ('Account', 'Payment', 'Other')", name="ck_rules_route"),
        sa.CheckConstraint("channel IS NULL OR channel IN ('web', 'email', 'api')", name="ck_rules_channel"),
    )
    op.create_table(
        "rule_versions",
        sa.Column("rule_id", sa.Integer(), sa.ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("saved_by", sa.Integer(), sa.ForeignKey("agents.id", ondelete="SET NULL")),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("tickets", sa.Column("recipient", sa.String(320)))
    op.add_column("tickets", sa.Column("rule_id", sa.Integer()))
    op.add_column("tickets", sa.Column("rule_version", sa.Integer()))
    op.add_column("tickets", sa.Column("model_route", sa.String(16)))


def downgrade() -> None:
    op.drop_column("tickets", "model_route")
    op.drop_column("tickets", "rule_version")
    op.drop_column("tickets", "rule_id")
    op.drop_column("tickets", "recipient")
    op.drop_table("rule_versions")
    op.drop_table("rules")
