"""Customers: create, read, update, delete, the list, the detail with its timeline, and
follow-ups. Every query is scoped by the caller's data permissions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from wxcrm.core.models import utcnow
from wxcrm.core.phones import normalize_phone
from wxcrm.core.settings import Settings
from wxcrm.customers.leads import new_customer_number
from wxcrm.customers.models import (
    AssignmentHistory,
    Customer,
    CustomerAction,
    FollowUp,
    FreezeHistory,
)
from wxcrm.customers.needs import NEED_CARD_TARGETS, legacy_need_values
from wxcrm.customers.permissions import may_see
from wxcrm.customers.records.filters import (
    SIGNED,
    TOP_LEVEL,
    CustomerFilters,
    day_start,
    filtered,
)
from wxcrm.customers.records.schemas import (
    CustomerCreateIn,
    CustomerUpdateIn,
    FollowUpIn,
    SortField,
)
from wxcrm.users.models import User

ADMINS_ONLY_DELETE = "只有管理员可以删除客户"

NOT_FOUND = "客户不存在"
SORT_COLUMNS = {
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
    "lead_source": "leadSource",
    "contract_status": "contractStatus",
    "is_frozen": "isFrozen",
}


def check_choices(settings: Settings, values: dict[str, Any]) -> None:
    """Refuse list values that are not among the configured ones."""
    lists = {
        "leadSource": settings.lead_sources,
        "serviceCategory": settings.service_categories,
        "serviceType": settings.service_categories,
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


PHONE_TAKEN = "该手机号已被其他客户使用"
WECHAT_TAKEN = "该微信号已被其他客户使用"
MISSING_CONTACT = "请填写手机号或微信号"
# Input names that are another column's: the form's `remarks` is the column `remark`.
_COLUMNS = {"remarks": "remark"}
# The grade only managers give by hand (staff-api §4.6); a customer already graded so may
# still be edited by its advisor, whose form sends the grade back unchanged.
TOP_LEAD_LEVEL_FORBIDDEN = "只有管理员和经理可以手动设置线索等级为O类"


async def add_customer(
    session: AsyncSession,
    fields: dict[str, Any],
    *,
    by: User,
    owner_id: str | None,
    assignment_reason: str | None = None,
) -> Customer:
    """Insert a customer from checked `fields` (by Python name), owned by `owner_id` or in
    the public pool when None.

    A phone (normalised) or a WeChat id is required; one another customer has is refused
    (409, its field named), also when a concurrent create takes it first.
    """
    values = {_COLUMNS.get(name, name): value for name, value in fields.items()}
    values["phone"] = _phone(values["phone"]) if values.get("phone") else None
    values["wechat_id"] = values.get("wechat_id") or None
    if values["phone"] is None and values["wechat_id"] is None:
        raise ValidationFailed.on_field("phone", MISSING_CONTACT)
    await _refuse_taken_contact(session, values["phone"], values["wechat_id"], None)
    now = utcnow()
    customer = Customer(
        customer_no=new_customer_number(),
        **values,
        created_by_id=by.id,
        last_updated_by_id=by.id,
        owner_id=owner_id,
        assigned_at=now if owner_id else None,
        assigned_by_id=by.id if owner_id else None,
        assignment_reason=assignment_reason if owner_id else None,
        pool_entered_at=None if owner_id else now,
        signed_at=now if values.get("contract_status") == SIGNED else None,
    )
    try:
        async with session.begin_nested():
            session.add(customer)
    except IntegrityError as error:
        # A concurrent create took the phone or the WeChat id (now committed: asked again,
        # the answer names which).
        await _refuse_taken_contact(session, values["phone"], values["wechat_id"], None)
        raise Conflict(PHONE_TAKEN if values["phone"] else WECHAT_TAKEN) from error
    return customer


async def apply_changes(
    session: AsyncSession, customer: Customer, changes: dict[str, Any], *, by: User
) -> None:
    """Write checked `changes` (by Python name) to a customer, keeping who changed it, when
    it was signed and who froze it and why.

    A phone or WeChat id another customer has is refused (409, its field named); one of the
    two must remain.
    """
    values = {_COLUMNS.get(name, name): value for name, value in changes.items()}
    for name, value in values.items():
        if value is None and name in _REQUIRED_FIELDS:
            wire = _REQUIRED_FIELDS[name]
            raise ValidationFailed.on_field(wire, f"{wire} 不能为空")
    if "phone" in values:
        values["phone"] = _phone(values["phone"]) if values["phone"] else None
    if "wechat_id" in values:
        values["wechat_id"] = values["wechat_id"] or None
    phone = values.get("phone", customer.phone)
    wechat_id = values.get("wechat_id", customer.wechat_id)
    if phone is None and wechat_id is None:
        raise ValidationFailed.on_field("phone", MISSING_CONTACT)
    await _refuse_taken_contact(
        session,
        phone if phone != customer.phone else None,
        wechat_id if wechat_id != customer.wechat_id else None,
        customer.id,
    )
    now = utcnow()
    if values.get("contract_status") == SIGNED and customer.contract_status != SIGNED:
        customer.signed_at = now
    frozen = values.get("is_frozen", customer.is_frozen)
    if frozen != customer.is_frozen:
        customer.frozen_at = now if frozen else None
        customer.frozen_by_id = by.id if frozen else None
        # The reason sent with an unfreeze is the unfreeze's: kept in the history only.
        reason = values.get("frozen_reason") or None
        session.add(
            FreezeHistory(customer_id=customer.id, by_user_id=by.id, frozen=frozen, reason=reason)
        )
        values.setdefault("frozen_reason", None)  # a new freeze does not keep an old reason
    if not frozen and "frozen_reason" in values:
        values["frozen_reason"] = None  # only a frozen customer has a reason for it
    for name, value in values.items():
        setattr(customer, name, value)
    customer.last_updated_by_id = by.id
    await session.flush()


async def _refuse_taken_contact(
    session: AsyncSession, phone: str | None, wechat_id: str | None, own_id: str | None
) -> None:
    for column, value, message, field in (
        (Customer.phone, phone, PHONE_TAKEN, "phone"),
        (Customer.wechat_id, wechat_id, WECHAT_TAKEN, "wechatId"),
    ):
        if value is None:
            continue
        query = select(Customer.id).where(column == value)
        if own_id is not None:
            query = query.where(Customer.id != own_id)
        if await session.scalar(query):
            raise Conflict(message, [{"field": field, "message": message}])


async def create_customer(
    session: AsyncSession, settings: Settings, user: User, body: CustomerCreateIn
) -> Customer:
    check_choices(settings, body.model_dump(by_alias=True))
    fields = body.fields()
    if raises_to_top_level(user, fields.get("lead_level"), None):
        raise Forbidden(TOP_LEAD_LEVEL_FORBIDDEN)
    fields |= need_card_values(settings, fields)
    # An advisor's own customer; a manager's new customer starts in the public pool.
    owner = None if user.is_staff_manager else user.id
    return await add_customer(session, fields, by=user, owner_id=owner)


def need_card_values(
    settings: Settings, fields: dict[str, Any], customer: Customer | None = None
) -> dict[str, Any]:
    """The structured fields the older need card in `fields` fills, where neither `fields`
    nor the stored `customer` has a value (needs.legacy_need_values)."""
    stored = {name: getattr(customer, name) for name in NEED_CARD_TARGETS} if customer else {}
    return legacy_need_values(fields, stored, settings.service_categories)


def raises_to_top_level(user: User, level: str | None, stored_level: str | None) -> bool:
    """Whether `user` would set the O类 level by hand, which only admins and managers may.
    Only a change is: an advisor's form sends an O类 customer's level back unchanged."""
    return level == TOP_LEVEL and stored_level != TOP_LEVEL and not user.is_staff_manager


async def update_customer(
    session: AsyncSession, settings: Settings, user: User, customer_id: str, body: CustomerUpdateIn
) -> Customer:
    customer = await get_visible(session, user, customer_id)
    check_choices(settings, body.model_dump(by_alias=True, exclude_unset=True))
    changes = body.fields(sent_only=True)
    if {"is_frozen", "frozen_reason"} & changes.keys() and not user.is_staff_manager:
        raise Forbidden("只有管理员和经理可以冻结客户")
    if raises_to_top_level(user, changes.get("lead_level"), customer.lead_level):
        raise Forbidden(TOP_LEAD_LEVEL_FORBIDDEN)
    changes |= need_card_values(settings, changes, customer)
    await apply_changes(session, customer, changes, by=user)
    return customer


async def delete_customer(session: AsyncSession, user: User, customer_id: str) -> None:
    # Deleting takes the follow-ups and history along, past any undo: admins only.
    if not user.is_admin:
        raise Forbidden(ADMINS_ONLY_DELETE)
    customer = await get_visible(session, user, customer_id)
    await session.execute(delete(Customer).where(Customer.id == customer.id))


# A text search's total is exact up to this many matches; past it, it is the matches read
# (one more than the bound, or than the page's end deeper in): counting every match of a
# broad search read the whole table a second time.
SEARCH_TOTAL_BOUND = 1000


async def searched_page(
    session: AsyncSession,
    user: User,
    filters: CustomerFilters,
    ordering: Sequence[ColumnElement[Any]],
    offset: int,
    limit: int,
) -> tuple[list[str], int]:
    """A text search's page of customer ids, in order, and its total: one pass over the
    matches, their ids up to the bound (or this page's end) and one more."""
    cap = max(SEARCH_TOTAL_BOUND, offset + limit) + 1
    ids = list(
        await session.scalars(
            filtered(select(Customer.id), user, filters).order_by(*ordering).limit(cap)
        )
    )
    return ids[offset : offset + limit], len(ids)


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
    """A page of the customers `user` may see that pass `filters`, and their total (for a
    text search, exact up to SEARCH_TOTAL_BOUND matches, a lower bound past it)."""
    column = SORT_COLUMNS[sort]
    if sort is SortField.last_follow_up_at:
        # Never followed up sorts as longest ago, on every database alike.
        order = column.desc().nulls_last() if descending else column.asc().nulls_first()
    else:
        # Plain order on the other (NOT NULL) columns, or PostgreSQL will not use the index.
        order = column.desc() if descending else column.asc()
    ordering = (order, Customer.id.desc() if descending else Customer.id.asc())
    if filters.searches_text:
        page, total = await searched_page(session, user, filters, ordering, offset, limit)
        rows = await session.scalars(select(Customer).where(Customer.id.in_(page)))
        found = {customer.id: customer for customer in rows}
        return [found[i] for i in page], total
    counted = await session.scalar(
        filtered(select(func.count()).select_from(Customer), user, filters)
    )
    listed = await session.scalars(
        filtered(select(Customer), user, filters).order_by(*ordering).offset(offset).limit(limit)
    )
    return listed.all(), int(counted or 0)


async def detail(
    session: AsyncSession, user: User, customer_id: str
) -> tuple[Customer, list[dict[str, Any]]]:
    """The customer, if `user` may see it, and its timeline."""
    customer = await get_visible(session, user, customer_id)
    return customer, await timeline(session, customer)


async def timeline(session: AsyncSession, customer: Customer) -> list[dict[str, Any]]:
    """What happened to a customer, newest first: actions, follow-ups, assignments (pool
    events among them), freezes and unfreezes."""
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
    freezes = await session.scalars(
        select(FreezeHistory)
        .where(FreezeHistory.customer_id == customer.id)
        .order_by(FreezeHistory.created_at.desc())
        .limit(TIMELINE_LIMIT)
    )
    events += [
        {
            "type": "freeze",
            "time": f.created_at,
            "frozen": f.frozen,
            "reason": f.reason,
            "userId": f.by_user_id,
        }
        for f in freezes
    ]
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
        next_at = day_start(next_at)
    follow_up = FollowUp(
        customer_id=customer.id,
        user_id=user.id,
        method=body.method.value,
        content=body.content,
        next_follow_up_at=next_at,
    )
    session.add(follow_up)
    customer.last_follow_up_at = utcnow()
    customer.last_follow_up_by_id = user.id
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
