"""mini program users and wechat pushes

Revision ID: 74bc1e8e8c41
Revises: 1a5d60b48dbb
Create Date: 2026-11-21 06:23:42.039771
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "74bc1e8e8c41"
down_revision: str | None = "1a5d60b48dbb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "miniprogram_users",
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("unionid", sa.String(length=64), nullable=True),
        sa.Column("verified_phone", sa.String(length=11), nullable=True),
        sa.Column("phone_verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("openid", name=op.f("pk_miniprogram_users")),
    )
    op.create_table(
        "wechat_push_events",
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_push_events")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_wechat_push_events_dedupe_key")),
    )
    with op.batch_alter_table("wechat_push_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wechat_push_events_openid"), ["openid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wechat_push_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wechat_push_events_openid"))

    op.drop_table("wechat_push_events")
    op.drop_table("miniprogram_users")
