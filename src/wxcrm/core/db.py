"""Database engine, sessions, the one-transaction-per-request dependency, and the SQL
constructs every domain shares."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Boolean, ColumnElement, String, Table, event, exc, literal
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.util import await_only

from wxcrm.core.metrics import DB_CONNECTIONS_IN_USE, DB_POOL_TIMEOUTS, DB_POOL_WAITS
from wxcrm.core.settings import Settings

# Seconds a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option that makes a SQLite transaction take the write lock at BEGIN.
SQLITE_IMMEDIATE = "wxcrm_sqlite_immediate"
_HOLDS_GATE = "wxcrm_holds_write_gate"


# SQLite's words for a connection that can no longer write, whatever the file does next:
# one opened while the file was read-only stays read-only for good.
_SQLITE_BROKEN_CONNECTION = ("readonly database", "disk i/o error", "unable to open database")
_FILE_IDENTITY = "wxcrm_sqlite_file_identity"


@dataclass(frozen=True)
class PoolLimits:
    """How many connections one process keeps, and how long a request waits for one.

    Every request holds at most one connection at a time; when all are busy a request
    waits `timeout` seconds and then answers 503, never hangs.
    """

    size: int = 10
    max_overflow: int = 10
    timeout: float = 5.0


class FairQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio queue pool, handing out connections in the order asked for.

    Its own queue gives a connection just returned to whoever asks next, even while
    others wait, and a waiter that loses that race queues again at the back: under load
    the unlucky waited out the pool timeout while most were served within two seconds.
    A FIFO semaphore of the pool's capacity, taken before a checkout and given back after
    the checkin, serves them in turn (asyncio's semaphore lets no newcomer jump waiters).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._max_overflow < 0:
            raise ValueError("a fair pool needs a bounded overflow")
        self._turns = asyncio.Semaphore(self.size() + self._max_overflow)

    def _do_get(self) -> ConnectionPoolEntry:
        if not await_only(self._take_turn()):
            DB_POOL_TIMEOUTS.inc()
            raise exc.TimeoutError(
                f"QueuePool limit of size {self.size()} overflow {self._max_overflow} reached,"
                f" connection timed out, timeout {self._timeout:.2f}"
            )
        try:
            record = super()._do_get()
        except BaseException:
            self._turns.release()
            raise
        DB_CONNECTIONS_IN_USE.inc()
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            super()._do_return_conn(record)
        finally:
            DB_CONNECTIONS_IN_USE.dec()
            self._turns.release()

    async def _take_turn(self) -> bool:
        if not self._turns.locked():
            await self._turns.acquire()  # a free connection: no wait
            return True
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                await self._turns.acquire()
        except TimeoutError:
            return False
        finally:  # the waits that timed out too: they are the longest
            DB_POOL_WAITS.observe(time.perf_counter() - started)
        return True


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(
    url: str | URL, *, echo: bool = False, pool: PoolLimits | None = None, **kwargs: Any
) -> AsyncEngine:
    pool = pool or PoolLimits()
    if not is_sqlite(url) or make_url(url).database not in (None, "", ":memory:"):
        kwargs.setdefault("poolclass", FairQueuePool)
        kwargs.setdefault("pool_size", pool.size)
        kwargs.setdefault("max_overflow", pool.max_overflow)
        kwargs.setdefault("pool_timeout", pool.timeout)
    if not is_sqlite(url):
        # asyncpg prepares statements, and after five runs PostgreSQL may switch to a generic
        # plan that ignores the values: for a phone-prefix search that meant a full scan.
        kwargs.setdefault(
            "connect_args", {"server_settings": {"plan_cache_mode": "force_custom_plan"}}
        )
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, echo=echo, **kwargs)

    path = _sqlite_file(url)
    if path is not None:
        _create_private_file(path)
        # mode=rw: a connection never creates the file. Were it deleted under a running
        # process, new connections then fail loudly instead of writing to a new empty file.
        url = make_url(url).set(database=f"file:{path}", query={"uri": "true", "mode": "rw"})
    engine = create_async_engine(url, echo=echo, **kwargs)
    _configure_sqlite(engine, path)
    return engine


def _sqlite_file(url: str | URL) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


def _create_private_file(path: Path) -> None:
    """The database's folder (0700) and file (0600): customers' phones are in it."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(descriptor)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return (status.st_dev, status.st_ino)


def _configure_sqlite(engine: AsyncEngine, path: Path | None) -> None:
    """WAL, foreign keys, a busy timeout, and transactions that SQLite runs correctly.

    pysqlite's own transaction handling breaks SAVEPOINTs, so we turn it off and emit
    BEGIN ourselves. Writing transactions begin IMMEDIATE: taking the write lock up front
    lets the busy timeout queue writers, where a deferred transaction that upgrades to a
    writer would fail at once with SQLITE_BUSY. Reads stay deferred and concurrent (WAL).

    A connection that SQLite left unable to write (opened while the file was read-only,
    or whose file has gone) is thrown away rather than pooled, and a pooled connection
    whose file was deleted or replaced is never handed out again: it would write to a
    file nobody else reads.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        if path is not None:
            record.info[_FILE_IDENTITY] = _file_identity(path)
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
        if not connection.invalidated:  # an invalidated one let go when it was invalidated
            _let_go(connection.info)

    # Whatever ends a connection's use ends its turn, should no commit or rollback say so.
    @event.listens_for(engine.sync_engine.pool, "reset")
    def _on_reset(_dbapi: Any, record: Any, _state: Any) -> None:
        _let_go(record.info)

    @event.listens_for(engine.sync_engine.pool, "invalidate")
    def _on_invalidate(_dbapi: Any, record: Any, _exception: Any) -> None:
        _let_go(record.info)

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        message = str(context.original_exception).lower()
        if any(words in message for words in _SQLITE_BROKEN_CONNECTION):
            context.is_disconnect = True

    if path is not None:

        @event.listens_for(engine.sync_engine.pool, "checkout")
        def _on_checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
            if record.info.get(_FILE_IDENTITY) != _file_identity(path):
                # The pool discards this connection and opens another, which (mode=rw)
                # fails if the file is gone: an error the caller sees, not a lost write.
                raise exc.DisconnectionError("the database file was deleted or replaced")


@dataclass(frozen=True)
class Database:
    """The engine and the two session factories: one for reading, one for writing."""

    engine: AsyncEngine
    reader: async_sessionmaker[AsyncSession]
    writer: async_sessionmaker[AsyncSession]

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False, pool: PoolLimits | None = None) -> Database:
        engine = create_engine(url, echo=echo, pool=pool)
        return cls.from_engine(engine)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        pool = PoolLimits(
            size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            timeout=settings.database_pool_timeout,
        )
        return cls.from_url(settings.resolved_database_url, echo=settings.database_echo, pool=pool)

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


async def database_dependency(request: Request) -> Database:
    # async: FastAPI runs a plain function dependency in its thread pool.
    return get_database(request)


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


ShortReads = Callable[[], AbstractAsyncContextManager[AsyncSession]]


async def get_short_reads(request: Request) -> ShortReads:
    """Opens short read sessions, each closed (its connection back in the pool) at once.

    For looking up who calls before the request's own session takes a connection: a
    lookup session held open for the whole request would make every request hold two
    pooled connections, and twenty concurrent requests then wait on each other for good.
    (async: FastAPI would run a plain function in its thread pool.)
    """
    return get_database(request).reader


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ShortReadsDep = Annotated[ShortReads, Depends(get_short_reads)]
DatabaseDep = Annotated[Database, Depends(database_dependency)]


def dialect_insert(session: AsyncSession, model: type[Any] | Table) -> Any:
    """An INSERT that knows its dialect's `ON CONFLICT` clauses (PostgreSQL or SQLite)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return postgresql_insert(model)
    return sqlite_insert(model)


def rowcount(result: Any) -> int:
    """How many rows an UPDATE or DELETE touched (its Result's type does not say it has a
    count, and a driver may give None)."""
    return int(getattr(result, "rowcount", 0) or 0)


def insert_ignoring_conflicts(
    session: AsyncSession, model: type[Any], values: dict[str, Any]
) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` in the session's dialect."""
    return dialect_insert(session, model).values(**values).on_conflict_do_nothing()


# The shortest term a trigram index can serve.
TRIGRAM = 3


# Here, not with the customer filters: the staff search (users/) matches text the same way.
class ContainsIgnoringCase(ColumnElement[bool]):
    """`term` inside `column` whatever the case, as each database does it cheaply.

    A term without letters that have a case (digits, Chinese: most searches here) is a plain
    LIKE everywhere: case cannot matter. Otherwise SQLite's LIKE already ignores case (ASCII,
    as its lower() does), and elsewhere lower() goes on both sides: on PostgreSQL that is 2.3
    times faster than ILIKE (32 against 73 ms over 100,000 customers). lower() for every term
    (SQLAlchemy's icontains) made a search of digits or Chinese two to four times slower.

    On PostgreSQL a term of three characters or more is an ILIKE: a trigram index (pg_trgm,
    the customers' searched columns) serves LIKE and ILIKE but not lower(column), and needs
    a whole trigram in the term.
    """

    type = Boolean()
    inherit_cache = True
    # A comparison, as LIKE is: no `= 1` after it where booleans are integers (SQLite).
    _is_implicitly_boolean = True
    # What changes the SQL is part of the statement cache's key; the pattern's value is a
    # parameter, so a cached statement is reused with each search's own pattern.
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy declares it so)
        ("column", InternalTraversal.dp_clauseelement),
        ("pattern", InternalTraversal.dp_clauseelement),
        ("fold", InternalTraversal.dp_boolean),
        ("trigrams", InternalTraversal.dp_boolean),
    ]

    def __init__(self, column: QueryableAttribute[Any], term: str) -> None:
        escaped = term.replace("/", "//").replace("%", "/%").replace("_", "/_")
        self.column: ColumnElement[Any] = column.expression
        self.pattern = literal(f"%{escaped}%", String)
        self.fold = term.lower() != term.upper()
        self.trigrams = len(term) >= TRIGRAM


def _sides(element: ContainsIgnoringCase, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    return compiler.process(element.column, **kw), compiler.process(element.pattern, **kw)


@compiles(ContainsIgnoringCase)
def _folded_contains(element: ContainsIgnoringCase, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = _sides(element, compiler, **kw)
    if element.trigrams and compiler.dialect.name == "postgresql":
        return f"{column} ILIKE {pattern} ESCAPE '/'"
    if element.fold:
        return f"lower({column}) LIKE lower({pattern}) ESCAPE '/'"
    return f"{column} LIKE {pattern} ESCAPE '/'"


@compiles(ContainsIgnoringCase, "sqlite")
def _sqlite_contains(element: ContainsIgnoringCase, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = _sides(element, compiler, **kw)
    return f"{column} LIKE {pattern} ESCAPE '/'"


# Rows ANALYZE samples per index on SQLite: statistics in milliseconds, not a full scan.
SQLITE_ANALYSIS_LIMIT = 1000


async def refresh_planner_statistics(database: Database, _settings: Settings | None = None) -> None:
    """SQLite plans by statistics it keeps only when asked (ANALYZE): without them it walked
    the whole newest-first index for a phone-prefix search (37 ms over 100,000 customers)
    instead of the phone's unique index (0.3 ms). Sampled, so cheap enough to run at start
    and every hour. PostgreSQL's autovacuum keeps its own."""
    if not database.is_sqlite:
        return
    async with database.engine.connect() as connection:
        await connection.exec_driver_sql(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}")
        await connection.exec_driver_sql("ANALYZE")
        await connection.commit()
