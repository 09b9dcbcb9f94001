"""The 公海 cards' count of today's arrivals: customers now in the pool that entered since a
moment, and how many of those the recycle job sent back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import add_user, make_customer
from wxcrm.customers.pool.summary import Arrivals, arrivals_since

# Far ahead of any other test's customers: only this test's count.
SINCE = datetime(2100, 1, 1, tzinfo=UTC)


async def test_arrivals_count_those_still_in_the_pool_and_the_recycled_among_them(
    session: AsyncSession,
) -> None:
    hour = timedelta(hours=1)
    # Released (or new): no transfer stamp.
    await make_customer(session, pool_entered_at=SINCE + hour)
    # Recycled: the job stamps both times with one moment.
    await make_customer(
        session, pool_entered_at=SINCE + 2 * hour, last_transferred_at=SINCE + 2 * hour
    )
    # Recycled earlier, claimed, then released: an arrival, not a recycling.
    await make_customer(session, pool_entered_at=SINCE + 3 * hour, last_transferred_at=SINCE + hour)
    # Before the moment, and owned: not counted.
    await make_customer(session, pool_entered_at=SINCE - hour, last_transferred_at=SINCE - hour)
    await make_customer(session, await add_user(session), last_transferred_at=SINCE + hour)

    assert await arrivals_since(session, SINCE) == Arrivals(entered=3, recycled=1)
    assert await arrivals_since(session, SINCE + 2.5 * hour) == Arrivals(1, 0)
