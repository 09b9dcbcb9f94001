"""notification fold key index

Revision ID: 3693514dfda3
Revises: f3ece470f99b
Create Date: 2026-11-21 07:38:03.651608
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3693514dfda3"
down_revision: str | None = "f3ece470f99b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_fold_key_created", ["fold_key", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_fold_key_created")
