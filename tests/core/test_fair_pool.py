"""Connections go to requests in the order they asked: a request that has waited is not
overtaken by one that asks the moment a connection comes back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from wxcrm.core.db import Database, PoolLimits


async def test_a_returned_connection_goes_to_the_longest_waiter(tmp_path: Path) -> None:
    database = Database.from_url(
        f"sqlite+aiosqlite:///{tmp_path / 'fair.db'}",
        pool=PoolLimits(size=1, max_overflow=0, timeout=10),
    )
    served: list[str] = []

    async def use(name: str) -> None:
        async with database.engine.connect() as connection:
            served.append(name)
            await connection.execute(text("SELECT 1"))

    try:
        holder = await database.engine.connect()
        waiters = [asyncio.create_task(use(name)) for name in ("first", "second")]
        await asyncio.sleep(0.05)  # both are queued for the one connection
        await holder.close()
        # Asking again at once, before the waiters have run: in SQLAlchemy's own queue
        # this would take the connection straight back.
        await use("newcomer")
        await asyncio.gather(*waiters)
    finally:
        await database.dispose()
    assert served == ["first", "second", "newcomer"]
