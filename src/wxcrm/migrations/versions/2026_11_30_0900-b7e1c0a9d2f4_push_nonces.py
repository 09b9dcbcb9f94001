"""push nonces

Revision ID: b7e1c0a9d2f4
Revises: 3693514dfda3
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e1c0a9d2f4"
down_revision: str | None = "3693514dfda3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wechat_push_nonces",
        sa.Column("timestamp", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("timestamp", "nonce", name=op.f("pk_wechat_push_nonces")),
    )


def downgrade() -> None:
    op.drop_table("wechat_push_nonces")
