"""Why the model sent a ticket to review: tickets.review_reason (core.orm.REVIEW_REASONS)

Null for every ticket routed before this revision: the reason was not recorded then, and guessing it from the
stored confidence would be wrong for the unfamiliar-text rule, whose input is not stored.

Revision ID: 0017_review_reason
Revises: 0016_first_response
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_review_reason"
down_revision: str | None = "0016_first_response"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("review_reason", sa.String(16)))


def downgrade() -> None:
    op.drop_column("tickets", "review_reason")
