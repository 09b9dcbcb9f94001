"""Connections go to requests in the order they asked: a request that has waited is not
overtaken by one that asks the moment a connection comes back; and the pool says in its
metrics how many are in use, who waited and who gave up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import exc, text

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


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_the_pool_counts_connections_in_use_waits_and_timeouts(tmp_path: Path) -> None:
    database = Database.from_url(
        f"sqlite+aiosqlite:///{tmp_path / 'counted.db'}",
        pool=PoolLimits(size=1, max_overflow=0, timeout=0.3),
    )
    in_use = _sample("wxcrm_db_pool_connections_in_use")
    waits = _sample("wxcrm_db_pool_wait_seconds_count")
    timeouts = _sample("wxcrm_db_pool_timeouts_total")
    waited = _sample("wxcrm_db_pool_wait_seconds_sum")
    try:
        holder = await database.engine.connect()
        await holder.execute(text("SELECT 1"))
        assert _sample("wxcrm_db_pool_connections_in_use") == in_use + 1
        assert _sample("wxcrm_db_pool_wait_seconds_count") == waits  # the first did not wait

        with pytest.raises(exc.TimeoutError):
            async with database.engine.connect():
                pass
        assert _sample("wxcrm_db_pool_timeouts_total") == timeouts + 1
        # Its wait is in the histogram too: the longest waits are the ones that gave up.
        assert _sample("wxcrm_db_pool_wait_seconds_count") == waits + 1
        assert _sample("wxcrm_db_pool_wait_seconds_sum") - waited >= 0.3

        async def release_soon() -> None:
            await asyncio.sleep(0.05)
            await holder.close()

        releasing = asyncio.create_task(release_soon())
        async with database.engine.connect() as waited:
            await waited.execute(text("SELECT 1"))
            assert _sample("wxcrm_db_pool_connections_in_use") == in_use + 1
        await releasing
        assert _sample("wxcrm_db_pool_wait_seconds_count") == waits + 2
        assert _sample("wxcrm_db_pool_connections_in_use") == in_use
    finally:
        await database.dispose()
