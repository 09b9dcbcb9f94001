"""customer name bigrams

A name search is mostly two Chinese characters: too short for a trigram index. This keeps
the names' two-character pieces (bigrams) where an index finds them:

- PostgreSQL: a GIN index on `search_bigrams(name)`, the array of the lower-cased name's
  bigrams (an immutable SQL function).
- SQLite: a table `search_customer_name_bigrams` of (bigram, customer id), kept in step by
  triggers on insert, update of the name and delete of a customer. A name is at most 64
  characters: a trigger takes its pieces at positions 1 to 63.

Both are outside the models (`search_` names: the schema comparison leaves them alone).
A later migration that rebuilds `customers` on SQLite (Alembic's batch mode) must create
the three triggers again.

Revision ID: 8e4b2d7a9c15
Revises: 6c1e9a2f4b83
Create Date: 2026-12-01 15:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "8e4b2d7a9c15"
down_revision: str | None = "6c1e9a2f4b83"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME_LENGTH = 64
# Positions 1..63 as rows, for a trigger (SQLite allows no WITH clause in one).
_POSITIONS = "(VALUES " + ", ".join(f"({i})" for i in range(1, NAME_LENGTH)) + ")"


def _sqlite_bigrams(row: str) -> str:
    """The (bigram, customer id) rows of `row`'s name."""
    return (
        f"SELECT DISTINCT substr(lower({row}.name), column1, 2), {row}.id FROM {_POSITIONS}"
        f" WHERE column1 < length({row}.name)"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION search_bigrams(value text) RETURNS text[]
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
                SELECT coalesce(array_agg(DISTINCT substr(lower(value), i, 2)), '{}')
                FROM generate_series(1, char_length(value) - 1) AS i
            $$
            """
        )
        op.execute(
            "CREATE INDEX search_customers_name_bigrams ON customers"
            " USING gin (search_bigrams(name))"
        )
        return
    op.execute(
        "CREATE TABLE search_customer_name_bigrams ("
        " bigram TEXT NOT NULL, customer_id VARCHAR(24) NOT NULL,"
        " PRIMARY KEY (bigram, customer_id)) WITHOUT ROWID"
    )
    op.execute(
        "CREATE INDEX search_customer_name_bigrams_customer"
        " ON search_customer_name_bigrams (customer_id)"
    )
    op.execute(
        "INSERT INTO search_customer_name_bigrams (bigram, customer_id)"
        f" SELECT DISTINCT substr(lower(customers.name), column1, 2), customers.id"
        f" FROM customers JOIN {_POSITIONS} ON column1 < length(customers.name)"
    )
    forget = "DELETE FROM search_customer_name_bigrams WHERE customer_id = old.id;"
    remember = (
        "INSERT OR IGNORE INTO search_customer_name_bigrams (bigram, customer_id)"
        f" {_sqlite_bigrams('new')};"
    )
    op.execute(
        "CREATE TRIGGER search_customer_names_insert AFTER INSERT ON customers"
        f" BEGIN {remember} END"
    )
    op.execute(
        "CREATE TRIGGER search_customer_names_update AFTER UPDATE OF name ON customers"
        f" BEGIN {forget} {remember} END"
    )
    op.execute(
        f"CREATE TRIGGER search_customer_names_delete AFTER DELETE ON customers BEGIN {forget} END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX search_customers_name_bigrams")
        op.execute("DROP FUNCTION search_bigrams(text)")
        return
    for trigger in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER search_customer_names_{trigger}")
    op.execute("DROP TABLE search_customer_name_bigrams")
