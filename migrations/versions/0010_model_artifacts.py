"""model artifacts: each model version's files in the database, so MODEL_DIR on every machine is only a cache

Versions registered before this revision have their files on the trainer's disk only; they are uploaded by the
code on first use (core/registry.py publish_local: worker start, `furiwake models` and `furiwake model …`, after
every retrain), since a migration cannot see that disk.

Revision ID: 0010_model_artifacts
Revises: 0009_fine_categories
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_model_artifacts"
down_revision: str | None = "0009_fine_categories"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_artifacts",
        sa.Column("version", sa.String(64), sa.ForeignKey("model_versions.version", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_artifacts")
