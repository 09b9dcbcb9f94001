"""customer list indexes: the default order (newest first, covering the search columns)
and the status filter

Revision ID: f3ece470f99b
Revises: 74bc1e8e8c41
Create Date: 2026-11-21 07:03:00.843752
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f3ece470f99b"
down_revision: str | None = "74bc1e8e8c41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customers_created",
            ["created_at", "id", "name", "phone", "customer_no"],
            unique=False,
        )
        batch_op.create_index(
            "ix_customers_status_created", ["contract_status", "created_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_status_created")
        batch_op.drop_index("ix_customers_created")
