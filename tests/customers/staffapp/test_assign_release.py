"""Assigning (§4.7), releasing to the pool (§4.11), the assignment history (§4.10) and the
staff list (§4.12) in the staff mini program: the original's refusals in its style and
order, what moves and what is written, and who sees which staff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.customers.conftest import Team, count, make_team
from tests.customers.staffapp.conftest import BASE, ok, refused
from tests.factories import add_customer, add_user, staff_headers
from wxcrm.core.ids import new_id
from wxcrm.core.models import utcnow
from wxcrm.customers.models import AssignmentHistory, Customer
from wxcrm.notifications.models import Notification
from wxcrm.users.models import Role

ASSIGNED = "客户分配成功"
RELEASED = "客户已释放到公海"


async def assign(
    client: httpx.AsyncClient, headers: dict[str, str], customer_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"{BASE}/{customer_id}/assign", json=body, headers=headers)


async def release(
    client: httpx.AsyncClient, headers: dict[str, str], customer_id: str, reason: Any = "不需要了"
) -> httpx.Response:
    body = {} if reason is ... else {"reason": reason}
    return await client.post(f"{BASE}/{customer_id}/release-to-pool", json=body, headers=headers)


async def owner(session: AsyncSession, customer_id: str) -> str | None:
    customer = await session.get(Customer, customer_id, populate_existing=True)
    assert customer is not None
    return customer.owner_id


# -- assign -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "manager"])
async def test_an_assignment_answers_the_record_with_the_notifications_data(
    client: httpx.AsyncClient, session: AsyncSession, role: str
) -> None:
    team = await make_team(session, advisor_openids=True)
    customer = await add_customer(
        session, team.advisor, name="孙女士", service_category="月嫂", lead_source="美团"
    )
    body = {"assignedTo": team.other.id, "assignmentReason": "客户要求换人"}
    data = ok(await assign(client, team.headers(role), customer.id, body), ASSIGNED)
    by = team.member(role)
    # The record spread over {customerId: _id, ...}: customerId is the business number.
    assert (data["_id"], data["customerId"]) == (customer.id, customer.customer_no)
    assert (data["assignedTo"], data["assignedBy"]) == (team.other.id, by.id)
    assert data["assignedAt"] and data["assignmentReason"] == "客户要求换人"
    assert data["assignedToUser"] == {"name": "赵顾问", "username": team.other.username}
    assert data["notificationData"] == {
        "assignedToId": team.other.id,
        "customerName": "孙女士",
        "customerPhone": customer.phone,
        "source": "客户要求换人",
        "assignerName": by.name,
        "customerId": customer.id,
        "assignTime": data["notificationData"]["assignTime"],
        "serviceCategory": "月嫂",
        "leadSource": "美团",
    }
    [row] = (await session.scalars(select(AssignmentHistory))).all()
    assert (row.from_user_id, row.to_user_id, row.channel) == (
        team.advisor.id,
        team.other.id,
        "miniprogram",
    )
    [note] = (await session.scalars(select(Notification))).all()
    # The message opens the customer's page by its _id.
    assert note.payload["page"] == f"pages/customer/detail?id={customer.id}"


async def test_assigning_to_the_owner_again_changes_nothing_and_tells_no_one(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.other)
    body = {"assignedTo": team.other.id}
    data = ok(await assign(client, team.headers("manager"), customer.id, body), ASSIGNED)
    assert data["assignedTo"] == team.other.id and data["notificationData"] is None
    assert await count(session, AssignmentHistory) == 0
    assert await count(session, Notification) == 0


async def test_an_assignment_that_cannot_be_is_refused_in_the_originals_words(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor)
    frozen = await add_customer(session, team.advisor, is_frozen=True)
    gone = await add_user(session, Role.advisor, active=False)
    for headers, customer_id, to, message in (
        (team.headers("advisor"), customer.id, team.advisor.id, "无权限分配客户"),
        (team.headers("advisor"), customer.id, team.other.id, "无权限分配客户"),
        (team.headers("manager"), new_id(), team.other.id, "客户不存在"),
        (team.headers("manager"), customer.id, new_id(), "指定的负责人不存在"),
        (team.headers("manager"), customer.id, gone.id, "指定的负责人未激活"),
        (team.headers("admin"), customer.id, team.manager.id, "指定的负责人角色不允许被分配"),
        (team.headers("admin"), frozen.id, team.other.id, "客户已冻结，不能分配"),
    ):
        response = await assign(client, headers, customer_id, {"assignedTo": to})
        refused(response, message, message)  # the error is the text, not FORBIDDEN
    assert await owner(session, customer.id) == team.advisor.id
    assert await count(session, AssignmentHistory) == 0
    assert await count(session, Notification) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "该字段为必填项"),
        ({"assignedTo": ""}, "负责人ID不能为空"),
        ({"assignedTo": "li"}, "负责人ID格式不正确"),
        ({"assignedTo": "{to}", "assignmentReason": "因" * 201}, "分配原因不能超过200字"),
    ],
)
async def test_a_bad_assignment_is_a_400(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    body: dict[str, Any],
    message: str,
) -> None:
    customer = await add_customer(session, team.advisor)
    body = {key: value.replace("{to}", team.other.id) for key, value in body.items()}
    response = await assign(client, team.headers("manager"), customer.id, body)
    [detail] = assert_error(response, 400, "VALIDATION_ERROR")["error"]["details"]
    assert detail["message"] == message
    assert await owner(session, customer.id) == team.advisor.id


# -- release ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "manager", "advisor"])
async def test_a_customer_is_released_with_its_reason(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, role: str
) -> None:
    customer = await add_customer(session, team.advisor, lead_level="A类")
    data = ok(await release(client, team.headers(role), customer.id, " 客户找到了 "), RELEASED, 201)
    assert data["_id"] == customer.id and data["inPublicPool"] is True
    assert (data["assignedTo"], data["assignedToUser"]) == (None, None)
    assert data["publicPoolEntryReason"] == "客户找到了" and data["publicPoolEntryTime"]
    assert data["leadLevel"] == "A类"  # not set to 流失, unlike the original
    assert data["phone"] == customer.phone  # the whole record, as the original's
    [row] = (await session.scalars(select(AssignmentHistory))).all()
    assert (row.from_user_id, row.to_user_id, row.by_user_id) == (
        team.advisor.id,
        None,
        team.member(role).id,
    )
    assert (row.channel, row.reason) == ("release", "客户找到了")


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (..., "释放原因不能为空"),
        (None, "释放原因不能为空"),
        ("  ", "释放原因不能为空"),
        (42, "释放原因必须是文本"),
        ("长" * 201, "释放原因不能超过200个字符"),
    ],
)
async def test_a_release_needs_a_reason(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, reason: Any, message: str
) -> None:
    customer = await add_customer(session, team.advisor)
    response = await release(client, team.headers("advisor"), customer.id, reason)
    [detail] = assert_error(response, 400, "VALIDATION_ERROR")["error"]["details"]
    assert (detail["field"], detail["message"]) == ("reason", message)
    assert await owner(session, customer.id) == team.advisor.id


async def test_release_checks_in_the_originals_order(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    pooled = await add_customer(session, None)
    frozen = await add_customer(session, team.advisor, is_frozen=True)
    anothers_frozen = await add_customer(session, team.other, is_frozen=True)
    anothers = await add_customer(session, team.other)
    signed = await add_customer(session, team.advisor, contract_status="已签约")
    advisor, admin = team.headers("advisor"), team.headers("admin")
    for headers, customer_id, message in (
        (admin, new_id(), "客户不存在"),
        (advisor, pooled.id, "客户已在公海中"),
        # Frozen customers stay, whoever asks.
        (admin, frozen.id, "该线索已被冻结，无法释放到公海"),
        (advisor, anothers_frozen.id, "该线索已被冻结，无法释放到公海"),
        (advisor, anothers.id, "只有客户负责人或管理员可以释放客户到公海"),
        # Our pool's rule besides: an advisor keeps a signed customer.
        (advisor, signed.id, "已签约客户不能释放到公海"),
    ):
        refused(await release(client, headers, customer_id), message, message, status=201)
    assert await count(session, AssignmentHistory) == 0
    assert await owner(session, anothers.id) == team.other.id
    assert ok(await release(client, team.headers("manager"), signed.id), RELEASED, 201)


# -- assignment history -----------------------------------------------------------------------


async def test_the_history_newest_first_with_people_spelled_out(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor)
    now = utcnow()
    for minutes, channel, source, to, by, reason in (
        (50, "console", None, team.advisor, team.manager, "分给张"),
        (40, "auto_recycle", team.advisor, None, None, "超过15天未跟进，自动回收"),
        (30, "claim", None, team.other, team.other, None),
        (20, "release", team.other, None, team.other, "客户不需要了"),
        (10, "pool_assign", None, team.advisor, team.admin, None),
    ):
        session.add(
            AssignmentHistory(
                customer_id=customer.id,
                from_user_id=source.id if source else None,
                to_user_id=to.id if to else None,
                by_user_id=by.id if by else None,
                reason=reason,
                channel=channel,
                created_at=now - timedelta(minutes=minutes),
            )
        )
    await session.commit()
    for role in ("admin", "manager", "advisor"):  # the advisor: its own customer's history
        response = await client.get(
            f"{BASE}/{customer.id}/assignment-logs", headers=team.headers(role)
        )
        logs = ok(response, "分配历史获取成功")
        assert [log["action"] for log in logs] == [
            "assign",
            "release",
            "assign",
            "release",
            "assign",
        ]
        newest, recycled = logs[0], logs[3]
        assert newest["newAssignedTo"] == {
            "_id": team.advisor.id,
            "name": "张顾问",
            "username": team.advisor.username,
        }
        assert newest["assignedBy"]["name"] == "李管理" and newest["oldAssignedTo"] is None
        assert recycled["assignedBy"] is None and recycled["newAssignedTo"] is None
        assert recycled["reason"] == "超过15天未跟进，自动回收"
        for log in logs:
            assert log["customerId"] == customer.id
            assert log["assignedAt"] == log["createdAt"] == log["updatedAt"]
            for key in ("oldAssignedTo", "newAssignedTo", "assignedBy"):
                assert log[f"{key}User"] == log[key]
    anothers = await add_customer(session, team.other)
    response = await client.get(
        f"{BASE}/{anothers.id}/assignment-logs", headers=team.headers("advisor")
    )
    refused(response, "无权限查看此客户的分配历史", "FORBIDDEN")


# -- the staff list ---------------------------------------------------------------------------


async def test_managers_list_active_staff_and_an_advisor_only_itself(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_user(session, Role.advisor, name="离职的", active=False)
    for role in ("admin", "manager"):
        staff = ok(
            await client.get(f"{BASE}/employees/list", headers=team.headers(role)),
            "获取员工列表成功",
        )
        assert {person["name"] for person in staff} == {"李管理", "王经理", "张顾问", "赵顾问"}
        roles = {person["name"]: person["role"] for person in staff}
        assert roles == {
            "李管理": "admin",
            "王经理": "manager",
            "张顾问": "employee",
            "赵顾问": "employee",
        }
    advisor = await add_user(session, Role.advisor, name="孙顾问")
    async with session.begin_nested():
        stored = await session.merge(advisor)
        stored.department, stored.phone = "销售一部", "13912345678"
    await session.commit()
    [me] = ok(
        await client.get(f"{BASE}/employees/list", headers=staff_headers(advisor)),
        "获取员工列表成功",
    )
    assert me == {
        "_id": advisor.id,
        "name": "孙顾问",
        "role": "employee",
        "department": "销售一部",
        "phone": "13912345678",
        "email": "",
        "status": "active",
    }
    listed = ok(
        await client.get(f"{BASE}/employees/list", headers=team.headers("admin")),
        "获取员工列表成功",
    )
    assert listed[0]["_id"] == advisor.id  # newest first
    first = next(person for person in listed if person["name"] == "张顾问")
    assert (first["department"], first["phone"], first["email"]) == ("未分配", "", "")
