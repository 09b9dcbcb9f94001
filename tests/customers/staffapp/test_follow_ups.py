"""Follow-ups (§4.8, §4.9) and the follow-up status (§5): the way of contact mapped both
ways, the next date kept, the original's messages, who may see what, and one status rule
for the list's tag, its filter, the detail and the status endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.customers.conftest import Team, count
from tests.customers.staffapp.conftest import BASE, ok, refused
from tests.factories import add_customer
from wxcrm.core.models import utcnow
from wxcrm.customers.models import Customer, FollowUp

CREATED = "跟进记录创建成功"


async def write(
    client: httpx.AsyncClient, headers: dict[str, str], customer_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"{BASE}/{customer_id}/follow-ups", json=body, headers=headers)


@pytest.mark.parametrize("role", ["admin", "manager", "advisor"])
@pytest.mark.parametrize(
    ("wire", "stored"),
    [("phone", "电话"), ("wechat", "微信"), ("visit", "面谈"), ("other", "其他")],
)
async def test_a_follow_up_is_recorded(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    role: str,
    wire: str,
    stored: str,
) -> None:
    customer = await add_customer(session, team.advisor)
    body = {"type": wire, "content": " 约了周六面试 ", "nextFollowUpDate": "2030-01-03"}
    data = ok(await write(client, team.headers(role), customer.id, body), CREATED, status=201)
    me = team.member(role)
    assert data["customerId"] == customer.id and data["type"] == wire
    assert (data["content"], data["createdBy"]) == ("约了周六面试", me.id)  # a bare id here
    # A date alone is that day's start in Beijing.
    assert data["nextFollowUpDate"] == "2030-01-02T16:00:00Z"
    assert data["createdAt"] == data["updatedAt"]
    [row] = (await session.scalars(select(FollowUp))).all()
    assert (row.method, row.user_id, row.customer_id) == (stored, me.id, customer.id)
    assert row.next_follow_up_at == datetime(2030, 1, 2, 16, tzinfo=UTC)
    updated = await session.get(Customer, customer.id, populate_existing=True)
    assert updated is not None and updated.last_follow_up_at is not None


async def test_the_next_time_may_be_a_time(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor)
    headers = team.headers("advisor")
    for sent, kept in (
        ("2030-01-03T02:30:00.000Z", "2030-01-03T02:30:00Z"),
        ("2030-01-03T10:30:00", "2030-01-03T02:30:00Z"),  # no offset: Beijing's
        ("", None),
    ):
        body = {"type": "phone", "content": "x", "nextFollowUpDate": sent}
        data = ok(await write(client, headers, customer.id, body), CREATED, status=201)
        assert data["nextFollowUpDate"] == kept


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"content": "x"}, "type", "跟进方式不能为空"),
        ({"type": "sms", "content": "x"}, "type", "跟进方式必须是有效值"),
        ({"type": "电话", "content": "x"}, "type", "跟进方式必须是有效值"),
        ({"type": "phone"}, "content", "跟进内容不能为空"),
        ({"type": "phone", "content": "  "}, "content", "跟进内容不能为空"),
        ({"type": "phone", "content": 42}, "content", "跟进内容必须是字符串"),
        ({"type": "phone", "content": "长" * 1001}, "content", "跟进内容不能超过1000个字符"),
        (
            {"type": "phone", "content": "x", "nextFollowUpDate": "下周"},
            "nextFollowUpDate",
            "下次跟进时间格式不正确",
        ),
        (
            {"type": "phone", "content": "x", "nextFollowUpDate": "9999-01-01"},
            "nextFollowUpDate",
            "下次跟进时间格式不正确",
        ),
        ({"type": "phone", "content": "x", "result": "好"}, "result", "不允许的字段"),
    ],
)
async def test_a_bad_follow_up_is_a_400_naming_the_field(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    customer = await add_customer(session, team.advisor)
    response = await write(client, team.headers("advisor"), customer.id, body)
    [detail] = assert_error(response, 400, "VALIDATION_ERROR")["error"]["details"]
    assert (detail["field"], detail["message"]) == (field, message)
    assert await count(session, FollowUp) == 0


async def test_an_advisor_follows_up_and_reads_only_its_own_customers(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    anothers = await add_customer(session, team.other)
    headers = team.headers("advisor")
    body = {"type": "phone", "content": "x"}
    refused(await write(client, headers, anothers.id, body), "无权限跟进此客户", "FORBIDDEN", 201)
    response = await client.get(f"{BASE}/{anothers.id}/follow-ups", headers=headers)
    refused(response, "无权限查看此客户的跟进记录", "FORBIDDEN")
    response = await client.get(f"/api/customers/{anothers.id}/follow-up-status", headers=headers)
    refused(response, "无权限查看此客户的跟进状态", "FORBIDDEN")
    assert await count(session, FollowUp) == 0


async def test_the_follow_ups_newest_first_with_their_authors(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor)
    now = utcnow()
    # Written by the console in its own words: shown in the mini program's.
    for hours, author, method in ((3, team.advisor, "面谈"), (1, team.manager, "其他")):
        session.add(
            FollowUp(
                customer_id=customer.id,
                user_id=author.id,
                method=method,
                content=f"{hours}小时前",
                created_at=now - timedelta(hours=hours),
            )
        )
    await session.commit()
    ok(
        await write(
            client, team.headers("advisor"), customer.id, {"type": "wechat", "content": "刚刚"}
        ),
        CREATED,
        201,
    )
    for role in ("admin", "advisor"):
        response = await client.get(f"{BASE}/{customer.id}/follow-ups", headers=team.headers(role))
        data = ok(response, "跟进记录获取成功")
        assert [(f["content"], f["type"]) for f in data] == [
            ("刚刚", "wechat"),
            ("1小时前", "other"),
            ("3小时前", "visit"),
        ]
        assert data[1]["createdBy"] == {
            "_id": team.manager.id,
            "name": "王经理",
            "username": team.manager.username,
        }
        assert set(data[0]) == {
            "_id",
            "customerId",
            "type",
            "content",
            "createdBy",
            "nextFollowUpDate",
            "createdAt",
            "updatedAt",
        }


# -- the status rule --------------------------------------------------------------------------


async def test_one_status_rule_for_tag_filter_detail_and_status_endpoint(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    mine, other = team.advisor, team.other
    cases: dict[str, tuple[Customer, str | None, list[Any]]] = {}

    async def case(
        name: str, expected: str | None, authors: list[Any], content: str = "x", **columns: Any
    ) -> None:
        customer = await add_customer(session, mine, name=name, **columns)
        cases[name] = (customer, expected, authors)
        for author in authors:
            session.add(
                FollowUp(customer_id=customer.id, user_id=author.id, method="其他", content=content)
            )
        await session.commit()

    await case("新客", "新客未跟进", [])
    await case("已跟进", "已跟进", [mine])
    # A former owner's or a manager's follow-up does not count for the current owner.
    await case("别人跟的", "新客未跟进", [other, team.manager])
    await case("流转未跟", "流转未跟进", [other], transfer_count=1)
    await case("流转已跟", "已跟进", [mine], transfer_count=2)
    await case("已签约", None, [mine], contract_status="已签约")
    await case("O类", None, [], lead_level="O类", transfer_count=1)
    # A "系统" looking text is a follow-up all the same: we write none of our own.
    await case("像系统", "已跟进", [mine], content="系统：负责人由甲变更为乙")

    headers = team.headers("manager")
    body = ok(
        await client.get(f"{BASE}/list", params={"limit": 100}, headers=headers), "客户列表获取成功"
    )
    tags = {item["name"]: item["followUpStatus"] for item in body["customers"]}
    assert tags == {name: expected for name, (_, expected, _) in cases.items()}
    for status in ("新客未跟进", "流转未跟进", "已跟进"):
        response = await client.get(
            f"{BASE}/list", params={"followUpStatus": status, "limit": 100}, headers=headers
        )
        found = {item["name"] for item in ok(response, "客户列表获取成功")["customers"]}
        expected_names = {name for name, (_, expected, _) in cases.items() if expected == status}
        assert found == expected_names
        # The console's list filters by the same rule.
        console = await client.get(
            "/api/customers", params={"followUpStatus": status}, headers=headers
        )
        assert {item["name"] for item in console.json()["data"]["items"]} == expected_names
    for name, (customer, expected, authors) in cases.items():
        detail = ok(await client.get(f"{BASE}/{customer.id}", headers=headers), "客户详情获取成功")
        assert detail["followUpStatus"] == expected, name
        response = await client.get(
            f"/api/customers/{customer.id}/follow-up-status", headers=headers
        )
        state = ok(response, "跟进状态获取成功")
        assert state == {
            "customerId": customer.id,
            "customerName": name,
            "followUpStatus": expected,
            "transferCount": customer.transfer_count,
            "hasFollowUp": bool(authors),
            "currentOwnerHasFollowUp": mine in authors,
        }, name


async def test_a_customer_of_the_pool_is_never_followed_up_by_its_owner(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, None, transfer_count=1)
    session.add(
        FollowUp(customer_id=customer.id, user_id=team.advisor.id, method="电话", content="x")
    )
    await session.commit()
    response = await client.get(
        f"/api/customers/{customer.id}/follow-up-status", headers=team.headers("admin")
    )
    state = ok(response, "跟进状态获取成功")
    assert (state["followUpStatus"], state["hasFollowUp"], state["currentOwnerHasFollowUp"]) == (
        "流转未跟进",
        True,
        False,
    )
