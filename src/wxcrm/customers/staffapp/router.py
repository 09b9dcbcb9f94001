"""The staff mini program's customer endpoints over HTTP (the original's
`/api/customers/miniprogram/*` and `/api/customers/{id}/follow-up-status`).

A refused operation answers with the route's normal status (200, 201 for a POST) and
`success: false` (refusals.py); bad input and missing credentials stay 4xx. Included in the
app before the console's customer routers, whose `/api/customers/{id}` would take
`miniprogram` for a customer id; here the fixed paths come before `/miniprogram/{id}`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.idempotency import MAX_KEY_LENGTH, Replay
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


async def answer_refusal(request: Request, exc: Exception) -> JSONResponse:
    """A refused operation, as the mini program reads it: the route's normal status (201 for
    a POST), `success: false`. Raised out of the route, so the request's transaction (and a
    create's idempotency key) was rolled back."""
    assert isinstance(exc, Refused)
    status = 201 if request.method == "POST" else 200
    body = StaffEnvelope[None].refusal(exc).model_dump(mode="json", by_alias=True)
    return JSONResponse(body, status_code=status)


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
    return StaffEnvelope[Statistics].of(
        await service.statistics(session, settings, user, query), "统计信息获取成功"
    )


@router.get("/miniprogram/today-todo-stats")
async def today_todo(session: SessionDep, user: CurrentUser) -> StaffEnvelope[TodayTodoOut]:
    """Today's and this month's numbers (advisors: of their own customers)."""
    return StaffEnvelope[TodayTodoOut].of(
        await service.today_todo(session, user), "客户信息统计获取成功"
    )


@router.get("/miniprogram/list")
async def list_customers(
    query: ListQuery, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> StaffEnvelope[StaffCustomerPage]:
    """Customers the caller may see (not the pool's), filtered, sorted and paged."""
    return StaffEnvelope[StaffCustomerPage].of(
        await service.list_customers(session, settings, user, query), "客户列表获取成功"
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
    created = await service.create_customer(session, settings, user, body, key)
    if isinstance(created, Replay):
        return _SortedJSON(created.body, status_code=created.status_code)
    answer = envelope.of(created, "客户创建成功").model_dump(mode="json", by_alias=True)
    if key:
        await service.remember(session, user, key, 201, answer)
    return _SortedJSON(answer, status_code=201)


@router.get("/miniprogram/employees/list")
async def employees(session: SessionDep, user: CurrentUser) -> StaffEnvelope[list[EmployeeOut]]:
    """Active staff to assign to (advisors: only themselves)."""
    return StaffEnvelope[list[EmployeeOut]].of(
        await service.employees(session, user), "获取员工列表成功"
    )


@router.get("/miniprogram/{customer_id}")
async def detail(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> StaffEnvelope[StaffCustomerDetailOut]:
    """One customer, the people it names, and its newest follow-ups."""
    return StaffEnvelope[StaffCustomerDetailOut].of(
        await service.detail(session, user, customer_id), "客户详情获取成功"
    )


@router.patch("/miniprogram/{customer_id}")
async def update_customer(
    customer_id: CustomerId,
    body: CustomerFieldsIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> StaffEnvelope[StaffCustomerOut]:
    """Change a customer's fields (advisors: their own; a new owner: admins, managers)."""
    return StaffEnvelope[StaffCustomerOut].of(
        await service.update_customer(session, settings, user, customer_id, body),
        "客户信息更新成功",
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
    return StaffEnvelope[StaffAssignedOut].of(
        await service.assign(
            session, settings, user, customer_id, body.assigned_to, body.assignment_reason
        ),
        "客户分配成功",
    )


@router.post("/miniprogram/{customer_id}/follow-ups", status_code=201)
async def add_follow_up(
    customer_id: CustomerId, body: StaffFollowUpIn, session: SessionDep, user: CurrentUser
) -> StaffEnvelope[CreatedFollowUpOut]:
    """Record a follow-up (跟进记录)."""
    return StaffEnvelope[CreatedFollowUpOut].of(
        await service.add_follow_up(session, user, customer_id, body), "跟进记录创建成功"
    )


@router.get("/miniprogram/{customer_id}/follow-ups")
async def follow_ups(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> StaffEnvelope[list[FollowUpItemOut]]:
    """A customer's follow-ups, newest first."""
    return StaffEnvelope[list[FollowUpItemOut]].of(
        await service.follow_ups(session, user, customer_id), "跟进记录获取成功"
    )


@router.get("/miniprogram/{customer_id}/assignment-logs")
async def assignment_logs(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> StaffEnvelope[list[AssignmentLogOut]]:
    """A customer's changes of owner, newest first."""
    return StaffEnvelope[list[AssignmentLogOut]].of(
        await service.assignment_logs(session, user, customer_id), "分配历史获取成功"
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
    return StaffEnvelope[StaffCustomerOut].of(
        await service.release(session, settings, user, customer_id, body.reason), "客户已释放到公海"
    )


@router.get("/{customer_id}/follow-up-status")
async def follow_up_status(
    customer_id: CustomerId, session: SessionDep, user: CurrentUser
) -> StaffEnvelope[FollowUpStatusOut]:
    """A customer's follow-up status (跟进状态) and what it is made of."""
    return StaffEnvelope[FollowUpStatusOut].of(
        await service.follow_up_state(session, user, customer_id), "跟进状态获取成功"
    )
