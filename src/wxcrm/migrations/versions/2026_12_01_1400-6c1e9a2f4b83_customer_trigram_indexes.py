"""customer trigram indexes

PostgreSQL: trigram GIN indexes (pg_trgm) on the four columns the customer search looks
inside (name, phone, WeChat id, customer number), so a contains-search of three or more
characters reads the index instead of every row. SQLite: nothing (its search scans the
covering `ix_customers_created`).

Revision ID: 6c1e9a2f4b83
Revises: 3f8a1d5b6c72
Create Date: 2026-12-01 14:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "6c1e9a2f4b83"
down_revision: str | None = "3f8a1d5b6c72"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("name", "phone", "wechat_id", "customer_no")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # A trusted extension (PostgreSQL 13+): the database's owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in COLUMNS:
        op.create_index(
            f"ix_customers_{column}_trgm",
            "customers",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in COLUMNS:
        op.drop_index(f"ix_customers_{column}_trgm", table_name="customers")
