"""Database engine, sessions and the one-transaction-per-request dependency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only

# Seconds a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option that makes a SQLite transaction take the write lock at BEGIN.
SQLITE_IMMEDIATE = "wxcrm_sqlite_immediate"
_HOLDS_GATE = "wxcrm_holds_write_gate"


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    if not is_sqlite(url):
        # asyncpg prepares statements, and after five runs PostgreSQL may switch to a generic
        # plan that ignores the values: for a phone-prefix search that meant a full scan.
        kwargs.setdefault(
            "connect_args", {"server_settings": {"plan_cache_mode": "force_custom_plan"}}
        )
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, echo=echo, **kwargs)

    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo, **kwargs)
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and transactions that SQLite runs correctly.

    pysqlite's own transaction handling breaks SAVEPOINTs, so we turn it off and emit
    BEGIN ourselves. Writing transactions begin IMMEDIATE: taking the write lock up front
    lets the busy timeout queue writers, where a deferred transaction that upgrades to a
    writer would fail at once with SQLITE_BUSY. Reads stay deferred and concurrent (WAL).
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # Writers of this process queue here, in order, before queueing for SQLite's lock:
    # SQLite's own wait polls with sleeps of up to 100 ms, which under load costs far more
    # than the writes. Other processes still wait through the busy timeout.
    gate = asyncio.Lock()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if not connection.get_execution_options().get(SQLITE_IMMEDIATE, False):
            connection.exec_driver_sql("BEGIN")
            return
        await_only(gate.acquire())
        connection.info[_HOLDS_GATE] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _let_go(connection.info)
            raise

    def _let_go(info: dict[str, Any]) -> None:
        if info.pop(_HOLDS_GATE, False):
            gate.release()

    @event.listens_for(engine.sync_engine, "commit")
    @event.listens_for(engine.sync_engine, "rollback")
    def _on_end(connection: Any) -> None:
        _let_go(connection.info)

    # Whatever ends a connection's use ends its turn, should no commit or rollback say so.
    @event.listens_for(engine.sync_engine.pool, "reset")
    def _on_reset(_dbapi: Any, record: Any, _state: Any) -> None:
        _let_go(record.info)

    @event.listens_for(engine.sync_engine.pool, "invalidate")
    def _on_invalidate(_dbapi: Any, record: Any, _exception: Any) -> None:
        _let_go(record.info)


@dataclass(frozen=True)
class Database:
    """The engine and the two session factories: one for reading, one for writing."""

    engine: AsyncEngine
    reader: async_sessionmaker[AsyncSession]
    writer: async_sessionmaker[AsyncSession]

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Database:
        engine = create_engine(url, echo=echo)
        return cls.from_engine(engine)

    @classmethod
    def from_engine(cls, engine: AsyncEngine) -> Database:
        write_engine = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        return cls(
            engine=engine,
            reader=async_sessionmaker(engine, expire_on_commit=False),
            writer=async_sessionmaker(write_engine, expire_on_commit=False),
        )

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine.url)

    async def dispose(self) -> None:
        await self.engine.dispose()


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the route returns, rolled back on error.

    Services and repositories only flush. Declared with scope="function" so the commit
    happens before the response is sent: a failed commit becomes an error response,
    never a success the database does not hold.
    """
    database = get_database(request)
    factory = database.reader if request.method in _READ_METHODS else database.writer
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A short read-only session beside the request's own (for looking up who calls)."""
    async with get_database(request).reader() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
DatabaseDep = Annotated[Database, Depends(get_database)]


def dialect_insert(session: AsyncSession, model: type[Any]) -> Any:
    """An INSERT that knows its dialect's `ON CONFLICT` clauses (PostgreSQL or SQLite)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return postgresql_insert(model)
    return sqlite_insert(model)


def insert_ignoring_conflicts(
    session: AsyncSession, model: type[Any], values: dict[str, Any]
) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` in the session's dialect."""
    return dialect_insert(session, model).values(**values).on_conflict_do_nothing()
