"""freeze history

Every freeze and unfreeze of a customer with who did it and why, for the timeline: the
customer row keeps only the current freeze's reason.

Revision ID: 9d2b7c4e1f60
Revises: 7a3e52c9d0b4
Create Date: 2026-12-01 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d2b7c4e1f60"
down_revision: str | None = "7a3e52c9d0b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "freeze_history",
        sa.Column("customer_id", sa.String(length=24), nullable=False),
        sa.Column("by_user_id", sa.String(length=24), nullable=True),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_user_id"], ["users.id"], name=op.f("fk_freeze_history_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_freeze_history_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freeze_history")),
    )
    op.create_index(
        "ix_freeze_history_customer_created", "freeze_history", ["customer_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_freeze_history_customer_created", table_name="freeze_history")
    op.drop_table("freeze_history")
