"""tickets: index (model_version, routed_at) for the per-version override rate and the retrain's shadow replay

Revision ID: 0004_tickets_model_version
Revises: 0003_model_registry
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_tickets_model_version"
down_revision: str | None = "0003_model_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tickets_model_version_routed", "tickets", ["model_version", "routed_at"])


def downgrade() -> None:
    op.drop_index("ix_tickets_model_version_routed", table_name="tickets")
