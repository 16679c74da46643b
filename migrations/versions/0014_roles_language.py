"""roles and language: agents.role (admin / agent) and agents.language (their pages' language)

Agents that exist when this runs become admins: before roles every agent could retrain, change the champion and
manage agents, so an upgrade must not lock a team out of its own helpdesk. Agents created afterwards are agents
unless made admin (`furiwake create-agent --admin`, `furiwake agent role`); the first agent of an empty helpdesk is
an admin (core.agents.create_agent).

Plain ADD COLUMN, never batch mode (see 0013_assignment); the role's allowed values are checked in code.

Revision ID: 0014_roles_language
Revises: 0013_assignment
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_roles_language"
down_revision: str | None = "0013_assignment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("role", sa.String(8), nullable=False, server_default="agent"))
    op.add_column("agents", sa.Column("language", sa.String(8)))
    op.execute("UPDATE agents SET role = 'admin'")


def downgrade() -> None:
    op.drop_column("agents", "language")
    op.drop_column("agents", "role")
