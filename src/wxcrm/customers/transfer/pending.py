"""Check first, then import: an upload that passed the import's check is kept in the
database (`pending_imports`) until its uploader confirms it, and its import then runs in the
background while any of the app's processes can report its progress.

Every row or none. The import runs in ONE transaction, as the API's import does: the rows
are checked (the check again: the database may have changed since the upload), then
inserted in chunks, and the pending row is marked done in that same transaction, so
"done" is committed exactly when the customers are. Progress goes to the pending row from
separate short transactions, one per chunk of rows:

- while the rows are checked (no statement of the import has run yet, on either database);
- while they are written, on PostgreSQL only. SQLite has one writer at a time and the
  import's transaction is it: a progress write would wait for the import's commit. There
  the bar stands at "writing" until the import commits (under a second for 10,000 rows).

The import runs as an asyncio task in the process that took the confirm. If that process
dies mid-import, its database connection goes with it and the transaction rolls back:
nothing is imported. The pending row is then left "importing" with a heartbeat that no
longer moves; whoever reads it after `STALE_AFTER` marks it failed (interrupted, nothing
imported) and the uploader may upload again. An import merely slow past that moment finds
its row no longer "importing" when it tries to mark it done, and rolls back: a row marked
failed never has its customers imported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer
from starlette.concurrency import run_in_threadpool

from wxcrm.core.db import Database, rowcount
from wxcrm.core.errors import AppError, Conflict, NotFound, RateLimited
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.transfer.models import ImportStage, ImportStatus, PendingImport
from wxcrm.customers.transfer.service import (
    CheckReport,
    import_rows,
    read_sheet,
    take_import_slot,
)
from wxcrm.users.models import User

log = structlog.get_logger(__name__)

# An import writes its heartbeat at least every 500 rows (a fraction of a second) while it
# checks them; writing 10,000 rows takes about a second, longer only while other writers
# hold SQLite's lock (30 s at most each). Two minutes of silence is a dead process.
STALE_AFTER = timedelta(minutes=2)
# Uploads (and their results) are kept a day, then removed by a scheduled job.
KEEP_FOR = timedelta(days=1)

NOT_FOUND = "导入记录不存在或已过期，请重新上传文件"
ALREADY_CONFIRMED = "该文件已确认导入，不能重复导入"
INTERRUPTED = "导入中断（处理导入的服务进程已停止），未导入任何客户，请重新上传文件"
FAILED = "导入失败：服务器内部错误，未导入任何客户，请稍后重试"

# The imports this process runs: a task nobody references may be collected mid-run.
_running: set[asyncio.Task[None]] = set()


async def stash(
    session: AsyncSession, user: User, filename: str, content: bytes, report: CheckReport
) -> PendingImport:
    """Keep a file that checked clean until `user` confirms it. It replaces the user's
    earlier uploads still waiting: each holds up to 10 MB, and only the latest is wanted."""
    if not report.clean:
        raise ValueError("only a file without problems waits for a confirm")
    await session.execute(
        delete(PendingImport).where(
            PendingImport.created_by_id == user.id,
            PendingImport.status == ImportStatus.checked.value,
        )
    )
    pending = PendingImport(
        created_by_id=user.id,
        filename=filename[:255],
        content=content,
        row_count=report.rows,
        status=ImportStatus.checked.value,
        rows_done=0,
        created_at=utcnow(),
    )
    session.add(pending)
    await session.flush()
    return pending


async def current(database: Database, user: User, pending_id: str) -> PendingImport:
    """`user`'s upload as it stands now (404 for anyone else's); an import whose process
    has stopped beating is marked failed on the way."""
    pending = await _read(database, user, pending_id)
    if not _stale(pending, utcnow()):
        return pending
    async with database.writer() as session:
        await session.execute(
            _finish(pending_id, ImportStatus.failed, message=INTERRUPTED).where(
                PendingImport.heartbeat_at < utcnow() - STALE_AFTER
            )
        )
        await session.commit()
    return await _read(database, user, pending_id)


async def confirm(
    database: Database, settings: Settings, user: User, pending_id: str
) -> asyncio.Task[None]:
    """Start importing `user`'s checked upload in the background (the task). Once only: the
    status moves from checked to importing in one conditional UPDATE, so a second confirm
    (a double click, another tab, another process) finds nothing to start (409)."""
    try:
        release = take_import_slot()
    except RateLimited:  # this process imports a file: 429, unless there is nothing to start
        if (await _read(database, user, pending_id)).status != ImportStatus.checked.value:
            raise Conflict(ALREADY_CONFIRMED) from None
        raise
    try:
        now = utcnow()
        async with database.writer() as session:
            started = await session.execute(
                update(PendingImport)
                .where(
                    PendingImport.id == pending_id,
                    PendingImport.created_by_id == user.id,
                    PendingImport.status == ImportStatus.checked.value,
                )
                .values(
                    status=ImportStatus.importing.value,
                    stage=ImportStage.checking.value,
                    rows_done=0,
                    heartbeat_at=now,
                )
            )
            await session.commit()
        if rowcount(started) != 1:
            await _read(database, user, pending_id)  # 404 if it is not theirs
            raise Conflict(ALREADY_CONFIRMED)
    except BaseException:
        release()
        raise
    task = asyncio.create_task(run(database, settings, pending_id, release))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


async def run(
    database: Database,
    settings: Settings,
    pending_id: str,
    release: Callable[[], None] = lambda: None,
) -> None:
    """Import a confirmed upload: every row or none (see the module's docstring), the
    result written to its row. `release` gives back the import slot at the end."""
    try:
        await _import(database, settings, pending_id)
    except AppError as refused:  # a row went bad since the check, or the file did
        problems = refused.details if isinstance(refused.details, list) else None
        await _fail(database, pending_id, refused.message, problems)
    except asyncio.CancelledError:  # the server is shutting down: say so now
        await asyncio.shield(_fail(database, pending_id, INTERRUPTED))
        raise
    except Exception:
        log.exception("import_failed", pending_import=pending_id)
        await _fail(database, pending_id, FAILED)
    finally:
        release()


async def forget_old_imports(
    database: Database, settings: Settings, now: datetime | None = None
) -> int:
    """Remove uploads older than `KEEP_FOR` (a scheduled job); how many."""
    cutoff = (now or utcnow()) - KEEP_FOR
    async with database.writer() as session:
        result = await session.execute(
            delete(PendingImport).where(PendingImport.created_at < cutoff)
        )
        await session.commit()
    return rowcount(result)


async def _import(database: Database, settings: Settings, pending_id: str) -> None:
    # Read before the import's session begins: on SQLite its first statement takes the
    # write lock, and the progress of the checking stage must still be written.
    async with database.reader() as session:
        pending = await session.get(PendingImport, pending_id)
        importer = await session.get(User, pending.created_by_id) if pending else None
    if pending is None or importer is None or pending.content is None:
        return
    sheet = await run_in_threadpool(read_sheet, pending.filename, pending.content)

    async def progress(stage: ImportStage, done: int) -> None:
        if stage is ImportStage.writing and database.is_sqlite:
            return  # the import holds SQLite's only write lock until it commits
        async with database.writer() as session:
            await session.execute(
                update(PendingImport)
                .where(
                    PendingImport.id == pending_id,
                    PendingImport.status == ImportStatus.importing.value,
                )
                .values(stage=stage.value, rows_done=done, heartbeat_at=utcnow())
            )
            await session.commit()

    async with database.writer() as session:
        count = await import_rows(session, settings, importer, sheet.rows, progress=progress)
        message = f"导入成功：共 {count} 个客户{sheet.note()}"
        finished = await session.execute(
            _finish(pending_id, ImportStatus.done, message=message, imported=count)
        )
        if rowcount(finished) != 1:
            # Marked failed meanwhile (taken for dead): that word holds, nothing is imported.
            await session.rollback()
            return
        await session.commit()


async def _fail(
    database: Database,
    pending_id: str,
    message: str,
    problems: list[dict[str, Any]] | None = None,
) -> None:
    async with database.writer() as session:
        await session.execute(
            _finish(pending_id, ImportStatus.failed, message=message, problems=problems)
        )
        await session.commit()


def _finish(pending_id: str, status: ImportStatus, **values: Any) -> Any:
    """The UPDATE that ends an import under way (and only one under way), dropping the file."""
    now = utcnow()
    return (
        update(PendingImport)
        .where(
            PendingImport.id == pending_id,
            PendingImport.status == ImportStatus.importing.value,
        )
        .values(
            status=status.value,
            stage=None,
            content=None,
            finished_at=now,
            heartbeat_at=now,
            **values,
        )
    )


async def _read(database: Database, user: User, pending_id: str) -> PendingImport:
    async with database.reader() as session:
        pending = await session.scalar(
            select(PendingImport)
            .where(PendingImport.id == pending_id, PendingImport.created_by_id == user.id)
            .options(defer(PendingImport.content))  # up to 10 MB, read only to import it
        )
    if pending is None:
        raise NotFound(NOT_FOUND)
    return pending


def _stale(pending: PendingImport, now: datetime) -> bool:
    return pending.status == ImportStatus.importing.value and (
        pending.heartbeat_at is None or pending.heartbeat_at < now - STALE_AFTER
    )
