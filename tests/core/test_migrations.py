"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from wxcrm.core.db import Database
from wxcrm.core.migrations import only_this_dialect
from wxcrm.models import Base


def _differences(connection: Connection) -> list[Any]:
    include = only_this_dialect(connection.dialect.name)
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_match_models(database: Database) -> None:
    async with database.engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == []


async def test_schema_has_the_indexes_the_product_relies_on(database: Database) -> None:
    def indexes(connection: Connection) -> dict[str, list[dict[str, Any]]]:
        inspector = inspect(connection)
        return {
            table: inspector.get_indexes(table) + inspector.get_unique_constraints(table)  # type: ignore[operator]
            for table in ("customers", "notifications", "users")
        }

    async with database.engine.connect() as connection:
        found = await connection.run_sync(indexes)
    unique_columns = {
        table: {tuple(i["column_names"]) for i in items if i.get("unique", True)}
        for table, items in found.items()
    }
    assert ("phone",) in unique_columns["customers"]
    assert ("customer_no",) in unique_columns["customers"]
    assert ("username",) in unique_columns["users"]
    names = {i["name"] for i in found["notifications"]}
    assert {"ix_notifications_claim", "uq_notifications_pending_fold_key"} <= names
