"""Group commit: concurrent writes share transactions, each request answered after its own
item commits, and one item's failure stays its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import Database
from wxcrm.core.groupcommit import GroupCommit
from wxcrm.core.models import utcnow
from wxcrm.miniprogram.models import MiniProgramUser

REFUSED = "refused"
BROKEN = "broken"


class Refusal(Exception):
    pass


async def write_users(session: AsyncSession, openids: Sequence[str]) -> list[str | Exception]:
    """A mini-program user per openid; REFUSED is refused (nothing written), BROKEN breaks
    the whole transaction."""
    outcomes: list[str | Exception] = []
    now = utcnow()
    for openid in openids:
        if openid == REFUSED:
            outcomes.append(Refusal(openid))
            continue
        if openid == BROKEN:
            raise RuntimeError("this item cannot be written")
        session.add(MiniProgramUser(openid=openid, first_seen_at=now, last_login_at=now))
        outcomes.append(f"written {openid}")
    await session.flush()
    return outcomes


async def stored(database: Database) -> set[str]:
    async with database.reader() as session:
        return set(await session.scalars(select(MiniProgramUser.openid)))


@pytest.fixture
async def commits(committed: Database) -> AsyncIterator[tuple[GroupCommit[str, str], list[int]]]:
    """A group commit of mini-program users, and the size of each batch it wrote."""
    sizes: list[int] = []

    async def counted(session: AsyncSession, items: Sequence[str]) -> list[str | Exception]:
        sizes.append(len(items))
        return await write_users(session, items)

    yield GroupCommit(committed.writer, counted, max_batch=8), sizes


async def test_concurrent_items_share_transactions_and_each_gets_its_outcome(
    commits: tuple[GroupCommit[str, str], list[int]], committed: Database
) -> None:
    group, sizes = commits
    openids = [f"o-group-{n}" for n in range(20)]
    outcomes = await asyncio.gather(*(group.submit(openid) for openid in openids))
    assert outcomes == [f"written {openid}" for openid in openids]
    assert await stored(committed) == set(openids)
    # In batches of at most 8, all twenty.
    assert sizes == [8, 8, 4]


async def test_a_refused_item_fails_its_own_request_only(
    commits: tuple[GroupCommit[str, str], list[int]], committed: Database
) -> None:
    group, _ = commits
    openids = ["o-before", REFUSED, "o-after"]
    outcomes = await asyncio.gather(
        *(group.submit(openid) for openid in openids), return_exceptions=True
    )
    assert outcomes[0] == "written o-before" and outcomes[2] == "written o-after"
    assert isinstance(outcomes[1], Refusal)
    assert await stored(committed) == {"o-before", "o-after"}


async def test_an_item_that_breaks_its_batch_is_written_alone_and_fails_alone(
    commits: tuple[GroupCommit[str, str], list[int]], committed: Database
) -> None:
    group, sizes = commits
    openids = ["o-a", BROKEN, "o-b"]
    outcomes = await asyncio.gather(
        *(group.submit(openid) for openid in openids), return_exceptions=True
    )
    assert outcomes[0] == "written o-a" and outcomes[2] == "written o-b"
    assert isinstance(outcomes[1], RuntimeError)
    assert await stored(committed) == {"o-a", "o-b"}
    # The batch of three failed as one, then each was tried in a transaction of its own.
    assert sizes == [3, 1, 1, 1]
    # Alone, an item is written at once.
    assert await group.submit("o-alone") == "written o-alone"
    assert sizes[-1] == 1


async def test_nothing_is_answered_before_its_commit(committed: Database) -> None:
    """A request whose transaction fails to commit is answered with the failure, not with
    the outcome its write gave."""

    @asynccontextmanager
    async def commit_fails() -> AsyncIterator[AsyncSession]:
        async with committed.writer() as session:

            async def refuse_commit() -> None:
                raise ConnectionError("the database went away at commit")

            session.commit = refuse_commit  # type: ignore[method-assign]
            yield session

    group: GroupCommit[str, str] = GroupCommit(commit_fails, write_users)
    with pytest.raises(ConnectionError):
        await group.submit("o-never")
    async with committed.reader() as session:
        assert await session.scalar(select(func.count()).select_from(MiniProgramUser)) == 0


async def test_with_two_writers_a_slow_batch_does_not_hold_up_the_next(
    committed: Database,
) -> None:
    """On PostgreSQL several batches may be written at once: items that arrive while the
    only running writer is busy start a second one."""
    release = asyncio.Event()

    async def first_one_slow(session: AsyncSession, items: Sequence[str]) -> list[str | Exception]:
        if "o-slow" in items:
            await release.wait()  # before touching the database: SQLite has one writer
        return await write_users(session, items)

    group: GroupCommit[str, str] = GroupCommit(committed.writer, first_one_slow, writers=2)
    slow = asyncio.create_task(group.submit("o-slow"))
    await asyncio.sleep(0.05)  # the first writer has taken it and waits
    assert await asyncio.wait_for(group.submit("o-quick"), timeout=10) == "written o-quick"
    assert not slow.done()
    release.set()
    assert await slow == "written o-slow"
    assert await stored(committed) == {"o-slow", "o-quick"}


async def test_a_batch_is_written_outside_the_context_of_the_request_that_started_it(
    committed: Database,
) -> None:
    """The batch's log lines (a queued notification of another request's action) must not
    carry the request id of whichever request happened to start the writer."""
    seen: list[dict[str, object]] = []

    async def write(session: AsyncSession, items: Sequence[str]) -> list[str | Exception]:
        seen.append(structlog.contextvars.get_contextvars())
        return await write_users(session, items)

    commits: GroupCommit[str, str] = GroupCommit(committed.writer, write, max_batch=8)

    async def request(n: int) -> str:
        structlog.contextvars.bind_contextvars(request_id=f"request-{n}")
        return await commits.submit(f"o-context-{n}")

    assert await asyncio.gather(*(request(n) for n in range(3))) == [
        f"written o-context-{n}" for n in range(3)
    ]
    assert seen and all("request_id" not in context for context in seen)
