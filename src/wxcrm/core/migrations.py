"""Bringing a database to the newest schema, from the server, the CLI and the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Inside the package, so an installed wheel migrates with no checkout and no alembic.ini.
_SCRIPT_LOCATION = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config() -> Config:
    config = Config()
    # Options go through ConfigParser interpolation: a literal % in the path must be doubled.
    config.set_main_option("script_location", str(_SCRIPT_LOCATION).replace("%", "%%"))
    return config


def _revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions the database is at. Reading them must not leave a transaction open that
    alembic would take as the caller's: on SQLite each migration then runs in its own."""
    was_open = connection.in_transaction()
    heads = MigrationContext.configure(connection).get_current_heads()
    if not was_open:
        connection.commit()
    return heads


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    before = _revisions(connection)
    command.upgrade(config, "head")
    # The check reads every link of every row: worth it only after a migration ran,
    # not on every start of an up-to-date server.
    if connection.dialect.name == "sqlite" and _revisions(connection) != before:
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            raise RuntimeError(f"the migration left rows pointing at nothing: {broken[:5]}")


async def migrate(engine: AsyncEngine) -> None:
    """Apply every migration not yet applied. Safe to run from several processes at once
    on PostgreSQL (an advisory lock serialises them)."""
    async with _migrating(engine) as connection:
        await connection.run_sync(_upgrade)


def _downgrade_to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Undo the migrations after `revision` (a rollback to the release that had it)."""
    async with _migrating(engine) as connection:
        await connection.run_sync(_downgrade_to, revision)


@dataclass(frozen=True)
class SchemaState:
    current: tuple[str, ...]
    newest: str
    # Every revision this release knows, newest first, with what it did.
    history: tuple[tuple[str, str], ...]

    @property
    def up_to_date(self) -> bool:
        return self.current == (self.newest,)


async def schema_state(engine: AsyncEngine) -> SchemaState:
    """The revisions the database is at, and the newest this release knows."""
    async with engine.connect() as connection:
        current = await connection.run_sync(_revisions)
    scripts = ScriptDirectory.from_config(alembic_config())
    newest = scripts.get_current_head()
    assert newest is not None  # the package ships its migrations
    history = tuple(
        (script.revision, (script.doc or "").splitlines()[0] if script.doc else "")
        for script in scripts.walk_revisions()
    )
    return SchemaState(current, newest, history)


@asynccontextmanager
async def _migrating(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection to change the schema on, committed at the end; one process at a time."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql("SELECT pg_advisory_lock(724015)")
        if connection.dialect.name == "sqlite":
            # Alembic changes a SQLite table by copying it, dropping it and renaming the
            # copy: with foreign keys on, dropping a table others point at fails (or
            # cascades). The pragma works only outside a transaction, so on the raw
            # connection before the first statement; the links are checked after instead.
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            yield connection
            await connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                await connection.exec_driver_sql("SELECT pg_advisory_unlock(724015)")
                await connection.commit()
            if connection.dialect.name == "sqlite":
                await connection.invalidate()  # never pooled with foreign keys off


# What migrations keep by hand outside the models (search structures): named so.
OUTSIDE_MODELS_PREFIX = "search_"


def only_this_dialect(dialect: str) -> Callable[..., bool]:
    """Alembic's `include_object` for comparing the models with a `dialect` database: an
    index the models make only on another database (`ddl_if`) is not missing here, and
    what the migrations keep outside the models (OUTSIDE_MODELS_PREFIX) is not extra."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, _other: Any) -> bool:
        if reflected and (name or "").startswith(OUTSIDE_MODELS_PREFIX):
            return False
        wanted = getattr(obj, "_ddl_if", None) if type_ == "index" else None
        return wanted is None or wanted.dialect in (None, dialect)

    return include
