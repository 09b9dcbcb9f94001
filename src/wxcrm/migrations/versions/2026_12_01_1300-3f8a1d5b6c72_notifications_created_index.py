"""notifications created index

The console's delivery log reads the outbox newest first and by day; without an index on
`created_at` each page sorted the whole history.

Revision ID: 3f8a1d5b6c72
Revises: 9d2b7c4e1f60
Create Date: 2026-12-01 13:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3f8a1d5b6c72"
down_revision: str | None = "9d2b7c4e1f60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_notifications_created", "notifications", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_notifications_created", table_name="notifications")
