"""outbox credit reservation

Revision ID: 1a5d60b48dbb
Revises: 59d6ca220d1b
Create Date: 2026-11-21 05:59:50.583384
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1a5d60b48dbb"
down_revision: str | None = "59d6ca220d1b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("credit_reserved", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("credit_reserved")
