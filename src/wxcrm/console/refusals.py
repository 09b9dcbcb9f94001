"""How the console names the customers an action refused: one query for all of them, and
only those the user may see (another's customer is not named)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.customers.batch import Failure
from wxcrm.customers.models import Customer
from wxcrm.customers.records.filters import CustomerFilters, filtered
from wxcrm.users.models import User


async def names(
    session: AsyncSession, user: User, ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """{id: (name, customer number)} of those of `ids` the user may see."""
    if not ids:
        return {}
    query = select(Customer.id, Customer.name, Customer.customer_no).where(Customer.id.in_(ids))
    rows = await session.execute(filtered(query, user, CustomerFilters()))
    return {customer_id: (name, number) for customer_id, name, number in rows.all()}


async def label(session: AsyncSession, user: User, customer_id: str, *, unseen: str) -> str:
    """One customer as staff know it, `名字（编号）`, or `unseen`."""
    return _label((await names(session, user, [customer_id])).get(customer_id), unseen)


async def failures(
    session: AsyncSession, user: User, failed: Sequence[Failure], *, unseen: str
) -> list[tuple[str, str]]:
    """Each refused customer named as the caller may see it, with the service's reason."""
    found = await names(session, user, [f.customer_id for f in failed])
    return [(_label(found.get(f.customer_id), unseen), f.message) for f in failed]


def _label(found: tuple[str, str] | None, unseen: str) -> str:
    if found is None:
        return unseen
    name, number = found
    return f"{name}（{number}）" if number else name
