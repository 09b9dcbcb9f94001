"""staff password changed at

A password reset ends the account's earlier sessions: tokens issued before it are refused.

Revision ID: 2d425d35a89b
Revises: bd9b90743cfb
Create Date: 2026-11-30 12:41:52.336165
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2d425d35a89b"
down_revision: str | None = "bd9b90743cfb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("password_changed_at")
