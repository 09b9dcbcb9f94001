"""Leads from the mini program: phone numbers checked and normalised, one customer per
phone, made by a unique index rather than check-then-insert."""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import dialect_insert
from wxcrm.core.ids import new_id
from wxcrm.core.models import utcnow
from wxcrm.customers.models import Customer

DEFAULT_LEAD_SOURCE = "其他"
DEFAULT_CONTRACT_STATUS = "待定"
# Tries before giving up on a free customer number (11 random digits: a clash is rare).
_NUMBER_TRIES = 5


def default_name(phone: str) -> str:
    return f"微信客户{phone[-4:]}"


def _shows_something(name: str) -> bool:
    # Zero-width and other format or control characters print nothing: a name made only of
    # them (and spaces) is no name, and would be an invisible row in the console.
    return any(not ch.isspace() and unicodedata.category(ch)[0] != "C" for ch in name)


def new_customer_number() -> str:
    return f"CUS{secrets.randbelow(10**11):011d}"


@dataclass(frozen=True)
class Lead:
    customer: Customer
    created: bool


async def create_or_link_lead(
    session: AsyncSession,
    *,
    phone: str,
    name: str | None,
    openid: str,
    advisor_id: str,
    remark: str,
    verified: bool,
) -> Lead:
    """The customer with this phone: made now if none exists, else the existing one.

    Concurrent requests with the same new phone make exactly one customer: the unique index
    on `phone` decides, and the losers find the winner's row.
    """
    now = utcnow()
    for _ in range(_NUMBER_TRIES):
        statement = (
            dialect_insert(session, Customer)
            .values(
                id=new_id(),
                customer_no=new_customer_number(),
                name=name if name and _shows_something(name) else default_name(phone),
                phone=phone,
                phone_verified=verified,
                openid=openid,
                lead_source=DEFAULT_LEAD_SOURCE,
                contract_status=DEFAULT_CONTRACT_STATUS,
                remark=remark,
                created_by_id=advisor_id,
                owner_id=advisor_id,
                assigned_at=now,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["phone"])
            .returning(Customer.id)
        )
        try:
            async with session.begin_nested():
                created_id = (await session.execute(statement)).scalar_one_or_none()
        except IntegrityError:
            continue  # the customer number was taken: draw another
        customer = (
            await session.execute(
                select(Customer)
                .where(Customer.phone == phone)
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        if created_id is None and verified and not customer.phone_verified:
            customer.phone_verified = True  # WeChat has now vouched for the number
        return Lead(customer, created=created_id is not None)
    raise RuntimeError("no free customer number after several tries")
