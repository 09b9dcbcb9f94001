"""Customers for staff: the list, CRUD, the detail with its timeline, follow-ups, and the
four assignment endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.core.errors import Conflict, NotFound
from wxcrm.core.pagination import Page, PageDep
from wxcrm.customers import service
from wxcrm.customers.assignment import (
    NOT_FOUND,
    AssignChannel,
    AssignmentResult,
    assign,
    assignee,
)
from wxcrm.customers.deps import FiltersDep
from wxcrm.customers.schemas import (
    AssignedCustomerOut,
    AssignIn,
    BatchAssignIn,
    BatchAssignOut,
    CustomerCreateIn,
    CustomerDetailOut,
    CustomerId,
    CustomerOptionsOut,
    CustomerOut,
    CustomerUpdateIn,
    FollowUpIn,
    FollowUpOut,
    MiniProgramAssignedCustomerOut,
    PoolAssignIn,
    SortField,
)
from wxcrm.users.deps import CurrentManager, CurrentUser

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


@router.post("/batch-assign")
async def batch_assign(
    body: BatchAssignIn, session: SessionDep, settings: SettingsDep, user: CurrentManager
) -> Envelope[BatchAssignOut]:
    """Assign many customers to one advisor; one notification for the batch."""
    result = await _assign(
        session,
        settings,
        user,
        body.customer_ids,
        body.assigned_to,
        body.assignment_reason,
        AssignChannel.batch,
    )
    return _batch_answer("批量分配完成", result)


@router.post("/public-pool/assign")
async def assign_from_pool(
    body: PoolAssignIn, session: SessionDep, settings: SettingsDep, user: CurrentManager
) -> Envelope[BatchAssignOut]:
    """Assign customers of the public pool to an advisor."""
    result = await _assign(
        session,
        settings,
        user,
        body.customer_ids,
        body.assigned_to,
        body.reason,
        AssignChannel.pool,
    )
    return _batch_answer("分配完成", result)


@router.patch("/miniprogram/{customer_id}/assign")
async def assign_from_miniprogram(
    customer_id: CustomerId,
    body: AssignIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentManager,
) -> Envelope[MiniProgramAssignedCustomerOut]:
    """Assign one customer from the mini program (a manager's staff token)."""
    result = await _assign_one(
        session, settings, user, customer_id, body, AssignChannel.miniprogram
    )
    customer = result.assigned[0]
    # The mini-program form reads customerId as the record's _id, not its number.
    data = MiniProgramAssignedCustomerOut.of(
        customer, customerId=customer.id, notificationData=result.notification_data
    )
    return Envelope[MiniProgramAssignedCustomerOut](data=data, message="客户分配成功")


@router.get("/{customer_id}")
async def get_customer(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> Envelope[CustomerDetailOut]:
    """One customer with its timeline of actions, follow-ups and assignments."""
    customer = await service.get_visible(session, user, customer_id)
    timeline = await service.timeline(session, customer)
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
    """Delete a customer and its follow-ups and history (admins and managers)."""
    await service.delete_customer(session, user, customer_id)
    return Envelope[None](data=None, message="删除客户成功")


@router.patch("/{customer_id}/assign")
async def assign_customer(
    customer_id: CustomerId,
    body: AssignIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentManager,
) -> Envelope[AssignedCustomerOut]:
    """Assign one customer to an advisor (console)."""
    result = await _assign_one(session, settings, user, customer_id, body, AssignChannel.console)
    data = AssignedCustomerOut.of(result.assigned[0], notificationData=result.notification_data)
    return Envelope[AssignedCustomerOut](data=data, message="客户分配成功")


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


async def _assign(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentManager,
    customer_ids: list[str],
    assigned_to: str,
    reason: str | None,
    channel: AssignChannel,
) -> AssignmentResult:
    to = await assignee(session, assigned_to)
    return await assign(
        session,
        settings,
        customer_ids=customer_ids,
        to=to,
        by=user,
        reason=reason,
        channel=channel,
    )


async def _assign_one(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentManager,
    customer_id: str,
    body: AssignIn,
    channel: AssignChannel,
) -> AssignmentResult:
    result = await _assign(
        session, settings, user, [customer_id], body.assigned_to, body.assignment_reason, channel
    )
    if result.errors:
        error = result.errors[0]["error"]
        if error == NOT_FOUND:
            raise NotFound(error)
        raise Conflict(error)  # already owned, or frozen
    await session.refresh(result.assigned[0])  # the response shows it as it is now
    return result


def _batch_answer(prefix: str, result: AssignmentResult) -> Envelope[BatchAssignOut]:
    done, failed = len(result.assigned), len(result.errors)
    data = BatchAssignOut.model_validate(
        {
            "success": done,
            "failed": failed,
            "errors": result.errors,
            "notificationData": result.notification_data,
        }
    )
    return Envelope[BatchAssignOut](
        data=data, message=f"{prefix}：成功 {done} 个，失败 {failed} 个"
    )
