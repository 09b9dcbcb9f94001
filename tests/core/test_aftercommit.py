"""Work kept for the commit runs once the transaction commits, and never when it rolls
back; a savepoint's release or rollback decides nothing."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.aftercommit import when_committed
from wxcrm.core.db import Database


async def test_it_runs_after_the_commit_and_only_once(committed: Database) -> None:
    done: list[str] = []
    async with committed.writer() as session:
        when_committed(session, lambda: done.append("counted"))
        assert done == []
        await session.commit()
        assert done == ["counted"]
        await session.commit()  # a later transaction of the same session runs nothing more
    assert done == ["counted"]


async def test_a_rollback_drops_it(committed: Database) -> None:
    done: list[str] = []
    async with committed.writer() as session:
        await session.execute(text("SELECT 1"))  # the transaction has begun
        when_committed(session, lambda: done.append("counted"))
        await session.rollback()
        await session.commit()
    assert done == []


async def _in_savepoint(session: AsyncSession, done: list[str], *, keep: bool) -> None:
    savepoint = await session.begin_nested()
    when_committed(session, lambda: done.append("in the savepoint"))
    if keep:
        await savepoint.commit()
    else:
        await savepoint.rollback()


async def test_a_released_savepoint_waits_for_the_transaction_around_it(
    committed: Database,
) -> None:
    done: list[str] = []
    async with committed.writer() as session:
        await _in_savepoint(session, done, keep=True)
        assert done == []  # released, not committed
        await session.rollback()
    assert done == []


async def test_a_savepoint_rolled_back_keeps_what_came_before_it(committed: Database) -> None:
    done: list[str] = []
    async with committed.writer() as session:
        when_committed(session, lambda: done.append("before"))
        await _in_savepoint(session, done, keep=False)
        await session.commit()
    # What the savepoint added is kept too: it is the caller's to not add what it undoes.
    assert done == ["before", "in the savepoint"]
