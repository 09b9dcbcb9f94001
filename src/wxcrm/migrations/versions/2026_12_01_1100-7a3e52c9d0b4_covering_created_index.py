"""covering created index

`ix_customers_created` also carries the WeChat id (the console's search reads the index
alone) and the owner, status, level, source and transfer count (the dashboard's counts of a
period's new customers read the index alone).

Revision ID: 7a3e52c9d0b4
Revises: 5c1f0e6a7d21
Create Date: 2026-12-01 11:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7a3e52c9d0b4"
down_revision: str | None = "5c1f0e6a7d21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ["created_at", "id", "name", "phone", "customer_no"]
AFTER = [
    *BEFORE,
    "wechat_id",
    "owner_id",
    "contract_status",
    "lead_level",
    "lead_source",
    "transfer_count",
]


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_created")
        batch_op.create_index("ix_customers_created", AFTER, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_created")
        batch_op.create_index("ix_customers_created", BEFORE, unique=False)
