"""pending imports

An upload that passed the import's check waits here for its uploader's confirm, then holds
the import's progress and result (the console's 导入导出; rows are removed after a day).

Revision ID: b4e9b91e4d79
Revises: 2d425d35a89b
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b4e9b91e4d79"
down_revision: str | None = "2d425d35a89b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_imports",
        sa.Column("created_by_id", sa.String(length=24), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=True),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "problems", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_pending_imports_created_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_imports")),
    )
    with op.batch_alter_table("pending_imports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_imports_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_pending_imports_created_by_id"), ["created_by_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pending_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_imports_created_by_id"))
        batch_op.drop_index(batch_op.f("ix_pending_imports_created_at"))
    op.drop_table("pending_imports")
