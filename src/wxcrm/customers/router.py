"""Customers for staff: the list, CRUD, the detail with its timeline, follow-ups, and the
four assignment endpoints of seed 001."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import envelope
from wxcrm.core.errors import Conflict, NotFound
from wxcrm.core.ids import OBJECT_ID_PATTERN
from wxcrm.core.pagination import PageDep, page_body
from wxcrm.customers import service
from wxcrm.customers.assignment import (
    NOT_FOUND,
    AssignChannel,
    AssignmentResult,
    assign,
    assignee,
)
from wxcrm.customers.deps import FiltersDep
from wxcrm.customers.models import Customer, FollowUp
from wxcrm.customers.schemas import (
    AssignIn,
    BatchAssignIn,
    CustomerCreateIn,
    CustomerUpdateIn,
    FollowUpIn,
    PoolAssignIn,
    SortField,
)
from wxcrm.users.deps import CurrentManager, CurrentUser

router = APIRouter(prefix="/api/customers", tags=["customers"])

CustomerId = Annotated[str, Path(pattern=OBJECT_ID_PATTERN.pattern, description="客户 _id")]


def customer_out(customer: Customer) -> dict[str, Any]:
    return {
        "_id": customer.id,
        "customerId": customer.customer_no,
        "name": customer.name,
        "phone": customer.phone,
        "phoneVerified": customer.phone_verified,
        "wechatId": customer.wechat_id,
        "leadSource": customer.lead_source,
        "serviceCategory": customer.service_category,
        "contractStatus": customer.contract_status,
        "leadLevel": customer.lead_level,
        "address": customer.address,
        "remarks": customer.remark,
        "isFrozen": customer.is_frozen,
        "assignedTo": customer.owner_id,
        "assignedBy": customer.assigned_by_id,
        "assignedAt": customer.assigned_at,
        "createdBy": customer.created_by_id,
        "inPublicPool": customer.owner_id is None,
        "publicPoolEntryTime": customer.pool_entered_at,
        "lastFollowUpTime": customer.last_follow_up_at,
        "createdAt": customer.created_at,
        "updatedAt": customer.updated_at,
    }


def follow_up_out(follow_up: FollowUp) -> dict[str, Any]:
    return {
        "_id": follow_up.id,
        "customerId": follow_up.customer_id,
        "userId": follow_up.user_id,
        "method": follow_up.method,
        "content": follow_up.content,
        "nextFollowUpAt": follow_up.next_follow_up_at,
        "createdAt": follow_up.created_at,
    }


@router.get("")
async def list_customers(
    session: SessionDep,
    user: CurrentUser,
    page: PageDep,
    filters: FiltersDep,
    sort_by: Annotated[SortField, Query(alias="sortBy")] = SortField.created_at,
    sort_order: Annotated[str, Query(alias="sortOrder", pattern="^(asc|desc)$")] = "desc",
) -> dict[str, Any]:
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
    return envelope(page_body([customer_out(c) for c in rows], total, page), "获取客户列表成功")


@router.get("/options")
async def options(settings: SettingsDep, user: CurrentUser) -> dict[str, Any]:
    """The configured lists: lead sources, service categories, statuses, lead levels."""
    return envelope(
        {
            "leadSource": settings.lead_sources,
            "serviceCategory": settings.service_categories,
            "contractStatus": settings.contract_statuses,
            "leadLevel": settings.lead_levels,
        },
        "获取选项成功",
    )


@router.post("")
async def create_customer(
    body: CustomerCreateIn, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> dict[str, Any]:
    """Create a customer (an advisor's own; a manager's starts in the public pool)."""
    customer = await service.create_customer(session, settings, user, body)
    return envelope(customer_out(customer), "创建客户成功")


@router.post("/batch-assign")
async def batch_assign(
    body: BatchAssignIn, session: SessionDep, settings: SettingsDep, user: CurrentManager
) -> dict[str, Any]:
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
    return envelope(_batch_body(result), _batch_message("批量分配完成", result))


@router.post("/public-pool/assign")
async def assign_from_pool(
    body: PoolAssignIn, session: SessionDep, settings: SettingsDep, user: CurrentManager
) -> dict[str, Any]:
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
    return envelope(_batch_body(result), _batch_message("分配完成", result))


@router.patch("/miniprogram/{customer_id}/assign")
async def assign_from_miniprogram(
    customer_id: CustomerId,
    body: AssignIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentManager,
) -> dict[str, Any]:
    """Assign one customer from the mini program (a manager's staff token)."""
    result = await _assign_one(
        session, settings, user, customer_id, body, AssignChannel.miniprogram
    )
    customer = result.assigned[0]
    # The mini-program form puts customerId (the record's _id), assignedTo and assignedAt
    # at the top of data, over the customer's own fields.
    data = customer_out(customer) | {
        "customerId": customer.id,
        "assignedTo": customer.owner_id,
        "assignedAt": customer.assigned_at,
        "notificationData": result.notification_data,
    }
    return envelope(data, "客户分配成功")


@router.get("/{customer_id}")
async def get_customer(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """One customer with its timeline of actions, follow-ups and assignments."""
    customer = await service.get_visible(session, user, customer_id)
    data = customer_out(customer) | {"timeline": await service.timeline(session, customer)}
    return envelope(data, "获取客户详情成功")


@router.patch("/{customer_id}")
async def update_customer(
    customer_id: CustomerId,
    body: CustomerUpdateIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> dict[str, Any]:
    """Change a customer's details (advisors: their own)."""
    customer = await service.update_customer(session, settings, user, customer_id, body)
    return envelope(customer_out(customer), "更新客户成功")


@router.delete("/{customer_id}")
async def delete_customer(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Delete a customer and its follow-ups and history (admins and managers)."""
    await service.delete_customer(session, user, customer_id)
    return envelope(None, "删除客户成功")


@router.patch("/{customer_id}/assign")
async def assign_customer(
    customer_id: CustomerId,
    body: AssignIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentManager,
) -> dict[str, Any]:
    """Assign one customer to an advisor (console)."""
    result = await _assign_one(session, settings, user, customer_id, body, AssignChannel.console)
    data = customer_out(result.assigned[0]) | {"notificationData": result.notification_data}
    return envelope(data, "客户分配成功")


@router.post("/{customer_id}/follow-ups")
async def add_follow_up(
    customer_id: CustomerId, body: FollowUpIn, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Record a follow-up (跟进记录); it becomes the customer's last follow-up."""
    follow_up = await service.add_follow_up(session, user, customer_id, body)
    return envelope(follow_up_out(follow_up), "添加跟进记录成功")


@router.get("/{customer_id}/follow-ups")
async def list_follow_ups(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser, page: PageDep
) -> dict[str, Any]:
    """A customer's follow-ups, newest first."""
    rows, total = await service.list_follow_ups(
        session, user, customer_id, offset=page.offset, limit=page.limit
    )
    return envelope(page_body([follow_up_out(f) for f in rows], total, page), "获取跟进记录成功")


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


def _batch_body(result: AssignmentResult) -> dict[str, Any]:
    return {
        "success": len(result.assigned),
        "failed": len(result.errors),
        "errors": result.errors,
        "notificationData": result.notification_data,
    }


def _batch_message(prefix: str, result: AssignmentResult) -> str:
    return f"{prefix}：成功 {len(result.assigned)} 个，失败 {len(result.errors)} 个"
