"""The staff mini program's customer endpoints over HTTP (the original's
`/api/customers/miniprogram/*` and `/api/customers/{id}/follow-up-status`).

A refused operation answers with the route's normal status (200, 201 for a POST) and
`success: false` (refusals.py); bad input and missing credentials stay 4xx. Included in the
app before the console's customer routers, whose `/api/customers/{id}` would take
`miniprogram` for a customer id; here the fixed paths come before `/miniprogram/{id}`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.idempotency import MAX_KEY_LENGTH
from wxcrm.customers.assignment.schemas import AssignIn
from wxcrm.customers.schemas import CustomerId
from wxcrm.customers.staffapp import service
from wxcrm.customers.staffapp.refusals import Refused
from wxcrm.customers.staffapp.schemas import (
    AdvisorStatisticsOut,
    AssignmentLogOut,
    CreatedCustomerOut,
    CreatedFollowUpOut,
    CustomerCreateIn,
    CustomerFieldsIn,
    EmployeeOut,
    FollowUpItemOut,
    FollowUpStatusOut,
    ManagerStatisticsOut,
    SanitisedCustomer,
    StaffAssignedOut,
    StaffCustomerDetailOut,
    StaffCustomerOut,
    StaffCustomerPage,
    StaffEnvelope,
    StaffFollowUpIn,
    StaffListQuery,
    StaffReleaseIn,
    TodayTodoOut,
)
from wxcrm.users.deps import CurrentUser

router = APIRouter(prefix="/api/customers", tags=["staff mini program"])

T = TypeVar("T")
ListQuery = Annotated[StaffListQuery, Query()]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=MAX_KEY_LENGTH,
        description="重试时带同一个键：得到第一次的答复，不会再建一个客户",
    ),
]


async def _answer(
    session: AsyncSession,
    envelope: type[StaffEnvelope[T]],
    message: str,
    work: Awaitable[T],
) -> StaffEnvelope[T]:
    try:
        data = await work
    except Refused as refused:
        await session.rollback()  # a refused operation changes nothing
        return envelope.refusal(refused)
    return envelope.of(data, message)


class _SortedJSON(JSONResponse):
    """Keys in sorted order: a replayed answer, read back from PostgreSQL's JSONB (which
    keeps no key order), is then the first answer byte for byte."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
        ).encode()


Statistics = ManagerStatisticsOut | AdvisorStatisticsOut


@router.get("/miniprogram/statistics")
async def statistics(
    query: ListQuery, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> StaffEnvelope[Statistics]:
    """Counts by contract status (admins, managers: also by source and category)."""
    return await _answer(
        session,
        StaffEnvelope[Statistics],
        "统计信息获取成功",
        service.statistics(session, settings, user, query),
    )


@router.get("/miniprogram/today-todo-stats")
async def today_todo(session: SessionDep, user: CurrentUser) -> StaffEnvelope[TodayTodoOut]:
    """Today's and this month's numbers (advisors: of their own customers)."""
    return await _answer(
        session,
        StaffEnvelope[TodayTodoOut],
        "客户信息统计获取成功",
        service.today_todo(session, user),
    )


@router.get("/miniprogram/list")
async def list_customers(
    query: ListQuery, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> StaffEnvelope[StaffCustomerPage]:
    """Customers the caller may see (not the pool's), filtered, sorted and paged."""
    return await _answer(
        session,
        StaffEnvelope[StaffCustomerPage],
        "客户列表获取成功",
        service.list_customers(session, settings, user, query),
    )


@router.post(
    "/miniprogram/create",
    status_code=201,
    # Answered as JSON it has built itself: a retry gets the stored first answer as it was.
    response_model=StaffEnvelope[CreatedCustomerOut],
)
async def create_customer(
    body: CustomerCreateIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create a customer (201 also when refused: see `success`)."""
    key = (idempotency_key or "").strip() or None
    envelope = StaffEnvelope[CreatedCustomerOut]
    try:
        created = await service.create_customer(session, settings, user, body, key)
    except Refused as refused:
        await session.rollback()  # the idempotency key too: a retry tries again
        answer = envelope.refusal(refused).model_dump(mode="json", by_alias=True)
        return _SortedJSON(answer, status_code=201)
    if isinstance(created, service.Replay):
        return _SortedJSON(created.body, status_code=created.status_code)
    answer = envelope.of(created, "客户创建成功").model_dump(mode="json", by_alias=True)
    if key:
        await service.remember(session, user, key, 201, answer)
    return _SortedJSON(answer, status_code=201)


@router.get("/miniprogram/employees/list")
async def employees(session: SessionDep, user: CurrentUser) -> StaffEnvelope[list[EmployeeOut]]:
    """Active staff to assign to (advisors: only themselves)."""
    return await _answer(
        session,
        StaffEnvelope[list[EmployeeOut]],
        "获取员工列表成功",
        service.employees(session, user),
    )


@router.get("/miniprogram/{customer_id}")
async def detail(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> StaffEnvelope[StaffCustomerDetailOut]:
    """One customer, the people it names, and its newest follow-ups."""
    return await _answer(
        session,
        StaffEnvelope[StaffCustomerDetailOut],
        "客户详情获取成功",
        service.detail(session, user, customer_id),
    )


@router.patch("/miniprogram/{customer_id}")
async def update_customer(
    customer_id: CustomerId,
    body: CustomerFieldsIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> StaffEnvelope[SanitisedCustomer]:
    """Change a customer's fields (advisors: their own; a new owner: admins, managers)."""
    return await _answer(
        session,
        StaffEnvelope[SanitisedCustomer],
        "客户信息更新成功",
        service.update_customer(session, settings, user, customer_id, body),
    )


@router.patch("/miniprogram/{customer_id}/assign")
async def assign(
    customer_id: CustomerId,
    body: AssignIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> StaffEnvelope[StaffAssignedOut]:
    """Assign a customer to an advisor (admins, managers); the advisor is notified."""
    return await _answer(
        session,
        StaffEnvelope[StaffAssignedOut],
        "客户分配成功",
        service.assign(
            session, settings, user, customer_id, body.assigned_to, body.assignment_reason
        ),
    )


@router.post("/miniprogram/{customer_id}/follow-ups", status_code=201)
async def add_follow_up(
    customer_id: CustomerId, body: StaffFollowUpIn, session: SessionDep, user: CurrentUser
) -> StaffEnvelope[CreatedFollowUpOut]:
    """Record a follow-up (跟进记录)."""
    return await _answer(
        session,
        StaffEnvelope[CreatedFollowUpOut],
        "跟进记录创建成功",
        service.add_follow_up(session, user, customer_id, body),
    )


@router.get("/miniprogram/{customer_id}/follow-ups")
async def follow_ups(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> StaffEnvelope[list[FollowUpItemOut]]:
    """A customer's follow-ups, newest first."""
    return await _answer(
        session,
        StaffEnvelope[list[FollowUpItemOut]],
        "跟进记录获取成功",
        service.follow_ups(session, user, customer_id),
    )


@router.get("/miniprogram/{customer_id}/assignment-logs")
async def assignment_logs(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> StaffEnvelope[list[AssignmentLogOut]]:
    """A customer's changes of owner, newest first."""
    return await _answer(
        session,
        StaffEnvelope[list[AssignmentLogOut]],
        "分配历史获取成功",
        service.assignment_logs(session, user, customer_id),
    )


@router.post("/miniprogram/{customer_id}/release-to-pool", status_code=201)
async def release(
    customer_id: CustomerId,
    body: StaffReleaseIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> StaffEnvelope[StaffCustomerOut]:
    """Release a customer to the public pool (its owner, admins, managers)."""
    return await _answer(
        session,
        StaffEnvelope[StaffCustomerOut],
        "客户已释放到公海",
        service.release(session, settings, user, customer_id, body.reason),
    )


@router.get("/{customer_id}/follow-up-status")
async def follow_up_status(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> StaffEnvelope[FollowUpStatusOut]:
    """A customer's follow-up status (跟进状态) and what it is made of."""
    return await _answer(
        session,
        StaffEnvelope[FollowUpStatusOut],
        "跟进状态获取成功",
        service.follow_up_state(session, user, customer_id),
    )
