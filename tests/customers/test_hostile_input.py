"""NUL characters and dates no CRM has a use for: a 400 envelope that names the field,
nothing changed, never a 500 (PostgreSQL stores no NUL; year 1 and year 9999 overflow)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.customers.conftest import Team
from tests.factories import add_customer
from wxcrm.customers.models import Customer, FollowUp


def assert_refused(response: httpx.Response, field: str) -> dict[str, Any]:
    body = assert_error(response, 400, "VALIDATION_ERROR")
    fields = [detail["field"] for detail in body["error"]["details"]]
    assert field in fields, fields
    return body


async def customer_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)


async def test_nul_in_the_unauthenticated_login_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/login", json={"username": "a\x00", "password": "x"})
    body = assert_refused(response, "username")
    assert "空字符" in body["message"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/customers?search=%00", "search"),
        ("/api/customers?search=%E5%BC%A0%00", "search"),
        ("/api/customers/public-pool?leadSource=a%00b", "leadSource"),
        ("/api/customers/export?search=%00", "search"),
        ("/api/notifications?status=%00", "status"),
    ],
)
async def test_nul_in_a_query_parameter_is_a_400(
    client: httpx.AsyncClient, team: Team, path: str, field: str
) -> None:
    assert_refused(await client.get(path, headers=team.headers("admin")), field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "张\x00三", "phone": "13800138000"}, "name"),
        ({"name": "张三", "phone": "13800138000", "remarks": "备注\x00"}, "remarks"),
        ({"name": "张三", "phone": "13800138000", "address": "\x00杭州"}, "address"),
        ({"name": "张三", "phone": "13800138000", "wechatId": "wx\x00"}, "wechatId"),
        ({"name": "张三", "wechatId": "wx", "idCardNumber": "3301\x00"}, "idCardNumber"),
        ({"name": "张三", "wechatId": "wx", "needRemarks": "猫\x00"}, "needRemarks"),
        ({"name": "张三", "wechatId": "wx", "salaryBudget": "8000\x00"}, "salaryBudget"),
        (
            {"name": "张三", "wechatId": "wx", "expectedStartDate": "\x002026-12-01"},
            "expectedStartDate",
        ),
        ({"name": "张三", "wechatId": "wx", "notes": "备注\x00"}, "notes"),
    ],
)
async def test_nul_in_a_customer_field_is_a_400_and_creates_nothing(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, body: dict[str, str], field: str
) -> None:
    before = await customer_count(session)
    response = await client.post("/api/customers", json=body, headers=team.headers("admin"))
    assert_refused(response, field)
    assert await customer_count(session) == before


async def test_nul_in_an_update_or_a_follow_up_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, name="原名")
    headers = team.headers("advisor")
    update = await client.patch(
        f"/api/customers/{customer.id}", json={"name": "新\x00名"}, headers=headers
    )
    assert_refused(update, "name")
    follow_up = await client.post(
        f"/api/customers/{customer.id}/follow-ups",
        json={"method": "电话", "content": "聊了\x00"},
        headers=headers,
    )
    assert_refused(follow_up, "content")
    assert await session.scalar(select(Customer.name).where(Customer.id == customer.id)) == "原名"
    assert await session.scalar(select(func.count()).select_from(FollowUp)) == 0


async def test_an_escaped_backslash_before_u0000_is_text_not_nul(
    client: httpx.AsyncClient, team: Team
) -> None:
    # JSON "\\u0000" is a backslash and the letters u0000: harmless text, accepted.
    response = await client.post(
        "/api/customers",
        content='{"name": "张三", "phone": "13800138000", "remarks": "C:\\\\u0000"}',
        headers={**team.headers("admin"), "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["remarks"] == "C:\\u0000"


@pytest.mark.parametrize(
    "query",
    [
        "createdFrom=0001-01-01",
        "createdTo=9999-12-31",
        "createdFrom=1899-12-31",
        "createdTo=2101-01-01",
    ],
)
@pytest.mark.parametrize("path", ["/api/customers", "/api/customers/export"])
async def test_dates_outside_1900_to_2100_are_a_400(
    client: httpx.AsyncClient, team: Team, path: str, query: str
) -> None:
    field = query.split("=")[0]
    body = assert_refused(await client.get(f"{path}?{query}", headers=team.headers("admin")), field)
    assert "1900-01-01" in body["message"]


async def test_dates_at_the_edges_of_the_range_are_accepted(
    client: httpx.AsyncClient, team: Team
) -> None:
    response = await client.get(
        "/api/customers?createdFrom=1900-01-01&createdTo=2100-12-31",
        headers=team.headers("admin"),
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("field", ["expectedStartDate", "expectedDeliveryDate"])
@pytest.mark.parametrize("when", ["0001-01-01", "9999-12-31", "9999-12-31T23:59:59-12:00"])
async def test_a_household_date_outside_the_range_is_a_400_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, field: str, when: str
) -> None:
    customer = await add_customer(session, team.advisor, name="原名")
    headers = team.headers("advisor")
    created = await client.post(
        "/api/customers", json={"name": "张三", "wechatId": "wx", field: when}, headers=headers
    )
    assert_refused(created, field)
    updated = await client.patch(
        f"/api/customers/{customer.id}", json={"name": "新名", field: when}, headers=headers
    )
    assert_refused(updated, field)
    assert await customer_count(session) == 1
    assert await session.scalar(select(Customer.name).where(Customer.id == customer.id)) == "原名"


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("salaryBudget", "薪资预算不能高于50000元"),
        ("homeArea", "家庭面积不能超过1000平方米"),
        ("familySize", "家庭人口不能超过20人"),
        ("serviceDays", "服务天数不能超过3650天"),
        ("dealAmount", "成交金额不能超过1000万元"),
    ],
)
async def test_a_number_too_large_for_a_float_is_a_400_with_the_fields_message(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, field: str, message: str
) -> None:
    customer = await add_customer(session, team.advisor)
    headers = {**team.headers("advisor"), "content-type": "application/json"}
    huge = "9" * 400
    created = await client.post(
        "/api/customers",
        content=f'{{"name": "张三", "wechatId": "wx", "{field}": {huge}}}',
        headers=headers,
    )
    assert assert_refused(created, field)["error"]["details"][0]["message"] == message
    updated = await client.patch(
        f"/api/customers/{customer.id}", content=f'{{"{field}": -{huge}}}', headers=headers
    )
    assert assert_refused(updated, field)["error"]["details"][0]["message"].endswith("不能为负数")
    assert await customer_count(session) == 1


@pytest.mark.parametrize(
    "when", ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-12:00"]
)
async def test_a_follow_up_date_outside_the_range_is_a_400_and_adds_nothing(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, when: str
) -> None:
    customer = await add_customer(session, team.advisor)
    response = await client.post(
        f"/api/customers/{customer.id}/follow-ups",
        json={"method": "电话", "content": "约了回访", "nextFollowUpAt": when},
        headers=team.headers("advisor"),
    )
    assert_refused(response, "nextFollowUpAt")
    assert await session.scalar(select(func.count()).select_from(FollowUp)) == 0


STAFF_APP = "/api/customers/miniprogram"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("createdStartDate=9999-12-31T23:00:00Z", "createdStartDate"),  # past year 9999 in Beijing
        ("assignedEndDate=0001-01-01T00:00:00%2B14:00", "assignedEndDate"),
        ("page=10000000000000000000", "page"),  # would overflow the database's offset
    ],
)
async def test_the_staff_mini_programs_list_refuses_what_it_cannot_read(
    client: httpx.AsyncClient, team: Team, query: str, field: str
) -> None:
    for path in ("list", "statistics"):
        response = await client.get(f"{STAFF_APP}/{path}?{query}", headers=team.headers("admin"))
        assert_refused(response, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": ["phone"], "content": "x"}, "type"),  # unhashable where a name belongs
        ({"type": {"a": 1}, "content": "x"}, "type"),
        ({"type": "phone", "content": "x", "nextFollowUpDate": "9999-12-31T23:00:00-12:00"},
         "nextFollowUpDate"),
    ],
)  # fmt: skip
async def test_a_staff_follow_up_of_the_wrong_shape_is_a_400_and_adds_nothing(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, body: Any, field: str
) -> None:
    customer = await add_customer(session, team.advisor)
    response = await client.post(
        f"{STAFF_APP}/{customer.id}/follow-ups", json=body, headers=team.headers("advisor")
    )
    assert_refused(response, field)
    count = select(func.count()).select_from(FollowUp).where(FollowUp.customer_id == customer.id)
    assert await session.scalar(count) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"salaryBudget": 10**400}, "salaryBudget"),
        ({"dealAmount": -(10**400)}, "dealAmount"),
        ({"expectedStartDate": "9999-12-31T23:00:00Z"}, "expectedStartDate"),
        ({"leadLevel": ["A类"]}, "leadLevel"),
    ],
)
async def test_a_staff_create_of_the_wrong_shape_is_a_400_and_creates_nothing(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, changes: Any, field: str
) -> None:
    before = await customer_count(session)
    body = {"name": "张三", "phone": "13800138000", "leadSource": "美团"}
    body |= {"contractStatus": "待定", "leadLevel": "A类"} | changes
    response = await client.post(f"{STAFF_APP}/create", json=body, headers=team.headers("advisor"))
    assert_refused(response, field)
    assert await customer_count(session) == before
