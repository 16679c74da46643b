"""fine categories: the model's second output on each ticket, and agents' corrections of it; the customer's
first mail's own Message-ID on e-mail tickets (our replies name it in In-Reply-To)

Revision ID: 0009_fine_categories
Revises: 0008_worker_heartbeats
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_fine_categories"
down_revision: str | None = "0008_worker_heartbeats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("fine_category", sa.String(64)))
        batch.add_column(sa.Column("fine_confidence", sa.Float()))
        batch.add_column(sa.Column("mail_message_id", sa.String(998)))
    with op.batch_alter_table("corrections") as batch:
        batch.add_column(sa.Column("predicted_category", sa.String(64)))
        batch.add_column(sa.Column("corrected_category", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("corrections") as batch:
        batch.drop_column("corrected_category")
        batch.drop_column("predicted_category")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("mail_message_id")
        batch.drop_column("fine_confidence")
        batch.drop_column("fine_category")
