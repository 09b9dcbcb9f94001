"""Customers for staff: the list, the form's options, CRUD, the detail with its timeline,
and follow-ups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.core.pagination import Page, PageDep
from wxcrm.customers.records import service
from wxcrm.customers.records.deps import FiltersDep
from wxcrm.customers.records.schemas import (
    CustomerCreateIn,
    CustomerDetailOut,
    CustomerOptionsOut,
    CustomerUpdateIn,
    FollowUpIn,
    FollowUpOut,
    SortField,
)
from wxcrm.customers.schemas import CustomerId, CustomerOut
from wxcrm.users.deps import CurrentUser

router = APIRouter(prefix="/api/customers", tags=["customers"])


@router.get("")
async def list_customers(
    session: SessionDep,
    user: CurrentUser,
    page: PageDep,
    filters: FiltersDep,
    sort_by: Annotated[SortField, Query(alias="sortBy")] = SortField.created_at,
    sort_order: Annotated[str, Query(alias="sortOrder", pattern="^(asc|desc)$")] = "desc",
) -> Envelope[Page[CustomerOut]]:
    """Customers the caller may see, filtered, sorted and paged."""
    rows, total = await service.list_customers(
        session,
        user,
        filters,
        sort=sort_by,
        descending=sort_order == "desc",
        offset=page.offset,
        limit=page.limit,
    )
    items = [CustomerOut.of(c) for c in rows]
    return Envelope[Page[CustomerOut]](
        data=Page[CustomerOut].of(items, total, page), message="获取客户列表成功"
    )


@router.get("/options")
async def options(settings: SettingsDep, user: CurrentUser) -> Envelope[CustomerOptionsOut]:
    """The configured lists: lead sources, service categories, statuses, lead levels."""
    data = CustomerOptionsOut(
        lead_source=settings.lead_sources,
        service_category=settings.service_categories,
        contract_status=settings.contract_statuses,
        lead_level=settings.lead_levels,
    )
    return Envelope[CustomerOptionsOut](data=data, message="获取选项成功")


@router.post("")
async def create_customer(
    body: CustomerCreateIn, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> Envelope[CustomerOut]:
    """Create a customer (an advisor's own; a manager's starts in the public pool)."""
    customer = await service.create_customer(session, settings, user, body)
    return Envelope[CustomerOut](data=CustomerOut.of(customer), message="创建客户成功")


@router.get("/{customer_id}")
async def get_customer(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> Envelope[CustomerDetailOut]:
    """One customer with its timeline of actions, follow-ups and assignments."""
    customer, timeline = await service.detail(session, user, customer_id)
    data = CustomerDetailOut.of(customer, timeline=timeline)
    return Envelope[CustomerDetailOut](data=data, message="获取客户详情成功")


@router.patch("/{customer_id}")
async def update_customer(
    customer_id: CustomerId,
    body: CustomerUpdateIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> Envelope[CustomerOut]:
    """Change a customer's details (advisors: their own)."""
    customer = await service.update_customer(session, settings, user, customer_id, body)
    return Envelope[CustomerOut](data=CustomerOut.of(customer), message="更新客户成功")


@router.delete("/{customer_id}")
async def delete_customer(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> Envelope[None]:
    """Delete a customer and its follow-ups and history (admins only)."""
    await service.delete_customer(session, user, customer_id)
    return Envelope[None](data=None, message="删除客户成功")


@router.post("/{customer_id}/follow-ups")
async def add_follow_up(
    customer_id: CustomerId, body: FollowUpIn, session: SessionDep, user: CurrentUser
) -> Envelope[FollowUpOut]:
    """Record a follow-up (跟进记录); it becomes the customer's last follow-up."""
    follow_up = await service.add_follow_up(session, user, customer_id, body)
    return Envelope[FollowUpOut](data=FollowUpOut.of(follow_up), message="添加跟进记录成功")


@router.get("/{customer_id}/follow-ups")
async def list_follow_ups(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser, page: PageDep
) -> Envelope[Page[FollowUpOut]]:
    """A customer's follow-ups, newest first."""
    rows, total = await service.list_follow_ups(
        session, user, customer_id, offset=page.offset, limit=page.limit
    )
    items = [FollowUpOut.of(f) for f in rows]
    return Envelope[Page[FollowUpOut]](
        data=Page[FollowUpOut].of(items, total, page), message="获取跟进记录成功"
    )
