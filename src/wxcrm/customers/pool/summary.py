"""What the console's 公海 cards count beyond the list: the customers that came into the pool
since a moment, and how many of those the recycle job sent back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.customers.models import Customer


@dataclass(frozen=True)
class Arrivals:
    """Customers in the pool now that entered it at or after a moment."""

    entered: int
    recycled: int  # of those, sent back by the recycle job


async def arrivals_since(session: AsyncSession, since: datetime) -> Arrivals:
    """Read through the pool-entry index. The recycle job stamps both times with one `now`;
    a release or a new customer leaves `last_transferred_at` alone."""
    recycled = case((Customer.last_transferred_at == Customer.pool_entered_at, 1))
    row = (
        await session.execute(
            select(func.count(), func.count(recycled)).where(
                Customer.owner_id.is_(None), Customer.pool_entered_at >= since
            )
        )
    ).one()
    return Arrivals(entered=int(row[0] or 0), recycled=int(row[1] or 0))
