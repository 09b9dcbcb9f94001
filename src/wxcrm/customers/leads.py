"""Leads from the mini program: phone numbers checked and normalised, one customer per
phone, made by a unique index rather than check-then-insert."""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import dialect_insert
from wxcrm.core.ids import new_id
from wxcrm.core.models import utcnow
from wxcrm.customers.models import Customer

DEFAULT_LEAD_SOURCE = "其他"
DEFAULT_CONTRACT_STATUS = "待定"
_CUSTOMERS = cast(Table, Customer.__table__)
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


@dataclass(frozen=True)
class WantedLead:
    """A phone someone left, and who the customer would be if the phone is new."""

    phone: str
    name: str | None
    openid: str
    advisor_id: str
    remark: str
    verified: bool  # WeChat vouched for the phone to this openid


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
    """The customer with this phone: made now if none exists, else the existing one."""
    wanted = WantedLead(phone, name, openid, advisor_id, remark, verified)
    return (await create_or_link_leads(session, [wanted]))[0]


async def create_or_link_leads(session: AsyncSession, wanted: Sequence[WantedLead]) -> list[Lead]:
    """The customer of each phone, in order: made now where none exists, else the existing
    one; three statements however many phones.

    Concurrent requests with the same new phone make exactly one customer: the unique index
    on `phone` decides, and the losers find the winner's row. Within `wanted` the first of a
    phone makes it (`created`), the later ones find it.
    """
    if not wanted:
        return []
    now = utcnow()
    firsts: dict[str, WantedLead] = {}
    for lead in wanted:
        firsts.setdefault(lead.phone, lead)
    # In phone order: two transactions inserting overlapping phones lock them in one order.
    rows = [_new_customer(lead, now) for _, lead in sorted(firsts.items())]
    created = await _insert_new(session, rows)
    customers = {
        customer.phone: customer
        for customer in await session.scalars(
            select(Customer)
            .where(Customer.phone.in_(firsts))
            .execution_options(populate_existing=True)
        )
    }
    leads: list[Lead] = []
    for lead in wanted:
        customer = customers[lead.phone]
        if lead.verified and not customer.phone_verified:
            customer.phone_verified = True  # WeChat has now vouched for the number
        is_new = lead.phone in created and firsts[lead.phone] is lead
        leads.append(Lead(customer, created=is_new))
    return leads


def _new_customer(lead: WantedLead, now: datetime) -> dict[str, Any]:
    name = lead.name if lead.name and _shows_something(lead.name) else default_name(lead.phone)
    return {
        "id": new_id(),
        "customer_no": new_customer_number(),
        "name": name,
        "phone": lead.phone,
        "phone_verified": lead.verified,
        "openid": lead.openid,
        "lead_source": DEFAULT_LEAD_SOURCE,
        "contract_status": DEFAULT_CONTRACT_STATUS,
        "remark": lead.remark,
        "created_by_id": lead.advisor_id,
        "owner_id": lead.advisor_id,
        "assigned_at": now,
        "created_at": now,
        "updated_at": now,
    }


async def _insert_new(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the customers whose phone is not taken; the phones that were inserted."""
    # The table, not the entity, and the rows as parameters: one statement compiled once
    # and cached (rows written into the statement made it compile anew every time).
    statement = (
        dialect_insert(session, _CUSTOMERS)
        .on_conflict_do_nothing(index_elements=["phone"])
        .returning(_CUSTOMERS.c.phone)
    )
    for _ in range(_NUMBER_TRIES):
        try:
            async with session.begin_nested():
                result = await session.execute(statement, rows)
                return set(result.scalars())
        except IntegrityError:
            # A customer number was taken: draw them again.
            rows = [{**row, "customer_no": new_customer_number()} for row in rows]
    raise RuntimeError("no free customer number after several tries")
