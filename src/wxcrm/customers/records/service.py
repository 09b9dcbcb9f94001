"""Customers: create, read, update, delete, the list, the detail with its timeline, and
follow-ups. Every query is scoped by the caller's data permissions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core import clock
from wxcrm.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.leads import new_customer_number, normalize_phone
from wxcrm.customers.models import AssignmentHistory, Customer, CustomerAction, FollowUp
from wxcrm.customers.permissions import may_see, visible_to
from wxcrm.customers.records.schemas import (
    CustomerCreateIn,
    CustomerUpdateIn,
    FollowUpIn,
    SortField,
)
from wxcrm.users.models import User

NOT_FOUND = "客户不存在"
_SORT_COLUMNS = {
    SortField.created_at: Customer.created_at,
    SortField.updated_at: Customer.updated_at,
    SortField.name: Customer.name,
    SortField.phone: Customer.phone,
    SortField.last_follow_up_at: Customer.last_follow_up_at,
}
TIMELINE_LIMIT = 100
# Fields a customer always has: an update may change them, never clear them.
_REQUIRED_FIELDS = {
    "name": "name",
    "phone": "phone",
    "lead_source": "leadSource",
    "contract_status": "contractStatus",
    "is_frozen": "isFrozen",
}


def check_choices(settings: Settings, values: dict[str, Any]) -> None:
    """Refuse list values that are not among the configured ones."""
    lists = {
        "leadSource": settings.lead_sources,
        "serviceCategory": settings.service_categories,
        "contractStatus": settings.contract_statuses,
        "leadLevel": settings.lead_levels,
    }
    for field, allowed in lists.items():
        value = values.get(field)
        if value is not None and value not in allowed:
            raise ValidationFailed.on_field(field, f"{field} 必须是 {'、'.join(allowed)} 之一")


def _phone(raw: str) -> str:
    phone = normalize_phone(raw)
    if phone is None:
        raise ValidationFailed.on_field("phone", "手机号格式不正确（需为中国大陆11位手机号）")
    return phone


async def get_visible(session: AsyncSession, user: User, customer_id: str) -> Customer:
    """The customer, if `user` may see it; otherwise as good as missing (404)."""
    customer = await session.get(Customer, customer_id)
    if customer is None or not may_see(user, customer):
        raise NotFound(NOT_FOUND)
    return customer


async def create_customer(
    session: AsyncSession, settings: Settings, user: User, body: CustomerCreateIn
) -> Customer:
    check_choices(settings, body.model_dump(by_alias=True))
    phone = _phone(body.phone)
    if await session.scalar(select(Customer.id).where(Customer.phone == phone)):
        raise Conflict("该手机号的客户已存在", [{"field": "phone", "message": "手机号已存在"}])
    now = utcnow()
    # An advisor's own customer; a manager's new customer starts in the public pool.
    owner = None if user.is_staff_manager else user.id
    customer = Customer(
        customer_no=new_customer_number(),
        name=body.name,
        phone=phone,
        wechat_id=body.wechat_id,
        lead_source=body.lead_source,
        service_category=body.service_category,
        contract_status=body.contract_status,
        lead_level=body.lead_level,
        address=body.address,
        remark=body.remarks,
        created_by_id=user.id,
        owner_id=owner,
        assigned_at=now if owner else None,
        pool_entered_at=None if owner else now,
    )
    try:
        async with session.begin_nested():
            session.add(customer)
    except IntegrityError as error:  # a concurrent create with the same phone won
        raise Conflict("该手机号的客户已存在") from error
    return customer


async def update_customer(
    session: AsyncSession, settings: Settings, user: User, customer_id: str, body: CustomerUpdateIn
) -> Customer:
    customer = await get_visible(session, user, customer_id)
    changes = body.model_dump(exclude_unset=True)
    check_choices(settings, body.model_dump(by_alias=True, exclude_unset=True))
    if "is_frozen" in changes and not user.is_staff_manager:
        raise Forbidden("只有管理员和经理可以冻结客户")
    if changes.get("phone") is not None:
        phone = _phone(changes.pop("phone"))
        taken = await session.scalar(
            select(Customer.id).where(Customer.phone == phone, Customer.id != customer.id)
        )
        if taken:
            raise Conflict("该手机号的客户已存在", [{"field": "phone", "message": "手机号已存在"}])
        customer.phone = phone
    for field, value in changes.items():
        if value is None and field in _REQUIRED_FIELDS:
            name = _REQUIRED_FIELDS[field]
            raise ValidationFailed.on_field(name, f"{name} 不能为空")
        setattr(customer, "remark" if field == "remarks" else field, value)
    await session.flush()
    return customer


async def delete_customer(session: AsyncSession, user: User, customer_id: str) -> None:
    if not user.is_staff_manager:
        raise Forbidden("只有管理员和经理可以删除客户")
    customer = await get_visible(session, user, customer_id)
    await session.execute(delete(Customer).where(Customer.id == customer.id))


@dataclass(frozen=True)
class CustomerFilters:
    search: str | None = None
    contract_status: str | None = None
    lead_source: str | None = None
    service_category: str | None = None
    lead_level: str | None = None
    owner_id: str | None = None
    in_pool: bool | None = None
    created_from: date | None = None
    created_to: date | None = None


def filtered(query: Select[Any], user: User, filters: CustomerFilters) -> Select[Any]:
    query = query.where(visible_to(user))
    if filters.search:
        term = filters.search.strip()
        digits = re.sub(r"[\s\-]", "", term).upper().removeprefix("CUS")
        if digits.isdigit():
            query = query.where(
                or_(
                    Customer.phone.startswith(digits),
                    Customer.customer_no.startswith(f"CUS{digits}"),
                )
            )
        else:
            query = query.where(Customer.name.icontains(term, autoescape=True))
    for column, value in (
        (Customer.contract_status, filters.contract_status),
        (Customer.lead_source, filters.lead_source),
        (Customer.service_category, filters.service_category),
        (Customer.lead_level, filters.lead_level),
        (Customer.owner_id, filters.owner_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.in_pool is not None:
        query = query.where(
            Customer.owner_id.is_(None) if filters.in_pool else Customer.owner_id.is_not(None)
        )
    if filters.created_from is not None:
        query = query.where(Customer.created_at >= _day_start(filters.created_from))
    if filters.created_to is not None:
        query = query.where(Customer.created_at < _day_start(filters.created_to, next_day=True))
    return query


def search_clause(search: str) -> ColumnElement[bool]:
    """Digits match a phone or customer-number prefix; other text is part of the name."""
    term = search.strip()
    digits = re.sub(r"[\s\-]", "", term).upper().removeprefix("CUS")
    if digits.isdigit():
        return or_(_prefix(Customer.phone, digits), _prefix(Customer.customer_no, f"CUS{digits}"))
    return Customer.name.icontains(term, autoescape=True)


def _prefix(column: Any, prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as a range the column's unique index can serve
    (LIKE 'p%' uses no index on PostgreSQL's default collation, nor on SQLite's NOCASE-less
    LIKE)."""
    after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(column >= prefix, column < after)


def _day_start(day: date, next_day: bool = False) -> datetime:
    return clock.day_start(day + timedelta(days=1) if next_day else day)


async def list_customers(
    session: AsyncSession,
    user: User,
    filters: CustomerFilters,
    *,
    sort: SortField,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[Sequence[Customer], int]:
    total = await session.scalar(
        filtered(select(func.count()).select_from(Customer), user, filters)
    )
    column = _SORT_COLUMNS[sort]
    if sort is SortField.last_follow_up_at:
        # Never followed up sorts as longest ago, on every database alike.
        order = column.desc().nulls_last() if descending else column.asc().nulls_first()
    else:
        # Plain order on the other (NOT NULL) columns, or PostgreSQL will not use the index.
        order = column.desc() if descending else column.asc()
    rows = await session.scalars(
        filtered(select(Customer), user, filters)
        .order_by(order, Customer.id.desc() if descending else Customer.id.asc())
        .offset(offset)
        .limit(limit)
    )
    return rows.all(), int(total or 0)


async def detail(
    session: AsyncSession, user: User, customer_id: str
) -> tuple[Customer, list[dict[str, Any]]]:
    """The customer, if `user` may see it, and its timeline."""
    customer = await get_visible(session, user, customer_id)
    return customer, await timeline(session, customer)


async def timeline(session: AsyncSession, customer: Customer) -> list[dict[str, Any]]:
    """What happened to a customer, newest first: actions, follow-ups and assignments."""
    actions = await session.scalars(
        select(CustomerAction)
        .where(CustomerAction.customer_record_id == customer.id)
        .order_by(CustomerAction.created_at.desc())
        .limit(TIMELINE_LIMIT)
    )
    follow_ups = await session.scalars(
        select(FollowUp)
        .where(FollowUp.customer_id == customer.id)
        .order_by(FollowUp.created_at.desc())
        .limit(TIMELINE_LIMIT)
    )
    history = await session.scalars(
        select(AssignmentHistory)
        .where(AssignmentHistory.customer_id == customer.id)
        .order_by(AssignmentHistory.created_at.desc())
        .limit(TIMELINE_LIMIT)
    )
    events: list[dict[str, Any]] = [
        {
            "type": "action",
            "time": a.created_at,
            "actionType": a.action_type,
            "advisorId": a.advisor_id,
            "openid": a.openid,
            "actionData": a.action_data,
        }
        for a in actions
    ]
    events += [
        {
            "type": "followUp",
            "time": f.created_at,
            "userId": f.user_id,
            "method": f.method,
            "content": f.content,
            "nextFollowUpAt": f.next_follow_up_at,
        }
        for f in follow_ups
    ]
    events += [assignment_out(h) | {"type": "assignment", "time": h.created_at} for h in history]
    events.sort(key=lambda event: event["time"], reverse=True)
    return events


def assignment_out(history: AssignmentHistory) -> dict[str, Any]:
    return {
        "_id": history.id,
        "customerId": history.customer_id,
        "from": history.from_user_id,
        "to": history.to_user_id,
        "by": history.by_user_id,
        "reason": history.reason,
        "channel": history.channel,
        "createdAt": history.created_at,
    }


async def add_follow_up(
    session: AsyncSession, user: User, customer_id: str, body: FollowUpIn
) -> FollowUp:
    customer = await get_visible(session, user, customer_id)
    next_at = body.next_follow_up_at
    if isinstance(next_at, date) and not isinstance(next_at, datetime):
        next_at = _day_start(next_at)
    follow_up = FollowUp(
        customer_id=customer.id,
        user_id=user.id,
        method=body.method.value,
        content=body.content,
        next_follow_up_at=next_at,
    )
    session.add(follow_up)
    customer.last_follow_up_at = utcnow()
    await session.flush()
    return follow_up


async def list_follow_ups(
    session: AsyncSession, user: User, customer_id: str, *, offset: int, limit: int
) -> tuple[Sequence[FollowUp], int]:
    customer = await get_visible(session, user, customer_id)
    total = await session.scalar(
        select(func.count()).select_from(FollowUp).where(FollowUp.customer_id == customer.id)
    )
    rows = await session.scalars(
        select(FollowUp)
        .where(FollowUp.customer_id == customer.id)
        .order_by(FollowUp.created_at.desc(), FollowUp.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return rows.all(), int(total or 0)
