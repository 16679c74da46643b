"""model registry: model_versions (exactly one champion, by a partial unique index) and job_leases

Revision ID: 0003_model_registry
Revises: 0002_agents_email
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_model_registry"
down_revision: str | None = "0002_agents_email"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAMPION = "status = 'champion'"


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("data_hash", sa.String(64)),
        sa.Column("train_counts", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("macro_f1", sa.Float()),
        sa.Column("champion_macro_f1", sa.Float()),
        sa.Column("compared_with", sa.String(64)),
        sa.Column("previous_champion", sa.String(64)),
        sa.Column("promoted_at", sa.DateTime(timezone=True)),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('candidate', 'champion', 'retired', 'rejected')",
                           name="ck_model_versions_status"),
        sa.CheckConstraint("trigger IN ('cli', 'schedule', 'button', 'initial')", name="ck_model_versions_trigger"),
    )
    # The database, not the code, guarantees a single champion: a second one fails its INSERT/UPDATE.
    op.create_index("uq_model_versions_one_champion", "model_versions", ["status"], unique=True,
                    postgresql_where=sa.text(CHAMPION), sqlite_where=sa.text(CHAMPION))
    op.create_index("ix_model_versions_created", "model_versions", ["created_at"])
    leases = op.create_table(
        "job_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(200)),
        sa.Column("acquired_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(leases, [{"name": "retrain"}, {"name": "registry"}])


def downgrade() -> None:
    op.drop_table("job_leases")
    op.drop_index("ix_model_versions_created", table_name="model_versions")
    op.drop_index("uq_model_versions_one_champion", table_name="model_versions")
    op.drop_table("model_versions")
