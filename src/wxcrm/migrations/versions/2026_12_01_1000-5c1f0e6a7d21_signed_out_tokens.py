"""signed-out tokens

Signing out of the console ends the session in every process: the token's digest is kept
until the token would have expired, and refused till then.

Revision ID: 5c1f0e6a7d21
Revises: b4e9b91e4d79
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1f0e6a7d21"
down_revision: str | None = "b4e9b91e4d79"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signed_out_tokens",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_signed_out_tokens")),
    )
    op.create_index("ix_signed_out_tokens_expires_at", "signed_out_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_signed_out_tokens_expires_at", table_name="signed_out_tokens")
    op.drop_table("signed_out_tokens")
