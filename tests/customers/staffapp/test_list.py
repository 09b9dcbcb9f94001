"""The list (§4.3), its statistics (§4.1) and today's numbers (§4.2), for each role: who
sees what, every query parameter with its default, the search taken literally, sorting
across pages, Beijing days, and the shapes the mini program reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.customers.conftest import Team
from tests.customers.staffapp.conftest import BASE, ok
from tests.factories import add_customer
from wxcrm.core import clock
from wxcrm.core.models import utcnow
from wxcrm.customers.models import Customer, FollowUp

LISTED = "客户列表获取成功"


async def listed(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    data: dict[str, Any] = ok(
        await client.get(f"{BASE}/list", params=params, headers=headers), LISTED
    )
    return data


async def names(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    return [item["name"] for item in (await listed(client, headers, **params))["customers"]]


def beijing(day: str, hour: int = 12) -> datetime:
    """A moment on `day` (YYYY-MM-DD) at `hour` o'clock in Beijing."""
    return clock.day_start(datetime.fromisoformat(day).date()) + timedelta(hours=hour)


# -- who sees what ----------------------------------------------------------------------------


async def test_advisors_see_their_own_and_managers_all_but_never_the_pool(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_customer(session, team.advisor, name="甲")
    await add_customer(session, team.other, name="乙")
    await add_customer(session, None, name="公海")
    for role in ("admin", "manager"):
        assert sorted(await names(client, team.headers(role))) == ["乙", "甲"]
        assert await names(client, team.headers(role), assignedTo=team.other.id) == ["乙"]
    assert await names(client, team.headers("advisor")) == ["甲"]
    # An advisor asking for another's customers still gets only its own.
    assert await names(client, team.headers("advisor"), assignedTo=team.other.id) == ["甲"]


async def test_a_row_names_its_owner_and_carries_the_follow_up_status(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, name="甲", wechat_id="wx-jia")
    data = await listed(client, team.headers("manager"))
    assert {key: data[key] for key in ("total", "page", "limit", "totalPages", "hasMore")} == {
        "total": 1,
        "page": 1,
        "limit": 10,
        "totalPages": 1,
        "hasMore": False,
    }
    [item] = data["customers"]
    assert item["_id"] == customer.id and item["customerId"] == customer.customer_no
    assert item["assignedTo"] == {
        "_id": team.advisor.id,
        "name": "张顾问",
        "username": team.advisor.username,
    }
    assert item["assignedToUser"] == {"name": "张顾问", "username": team.advisor.username}
    assert item["followUpStatus"] == "新客未跟进"
    assert (item["phone"], item["wechatId"], item["inPublicPool"]) == (
        customer.phone,
        "wx-jia",
        False,
    )
    # The whole record, as the console shows it (need cards included), for every role.
    assert "needSalary" in item and "salaryBudget" in item
    advisor_item = (await listed(client, team.headers("advisor")))["customers"][0]
    assert set(advisor_item) == set(item)


async def test_lost_customers_show_only_when_searched_or_asked_for(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_customer(session, team.advisor, name="在谈客户")
    await add_customer(session, team.advisor, name="流失的", contract_status="流失客户")
    headers = team.headers("advisor")
    assert await names(client, headers) == ["在谈客户"]
    assert await names(client, headers, contractStatus="流失客户") == ["流失的"]
    assert await names(client, headers, search="流失") == ["流失的"]
    assert await names(client, headers, search="") == ["在谈客户"]  # empty: as not sent


# -- the search -------------------------------------------------------------------------------


async def test_the_search_looks_in_name_phone_wechat_and_number(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_customer(session, team.advisor, name="王女士", phone="13812345678")
    await add_customer(
        session, team.advisor, name="李先生", phone="13700000001", wechat_id="Li_Xiansheng"
    )
    numbered = await add_customer(session, team.advisor, name="赵女士", phone="13600000002")
    headers = team.headers("manager")
    assert sorted(await names(client, headers, search="女士")) == ["王女士", "赵女士"]
    assert await names(client, headers, search="345678") == ["王女士"]
    assert await names(client, headers, search="li_xian") == ["李先生"]  # any case
    assert await names(client, headers, search=numbered.customer_no[-6:]) == ["赵女士"]
    assert await names(client, headers, search=" 王 ") == ["王女士"]


@pytest.mark.parametrize("typed", ["%", "_", ".*", "女士%", "[a-z]", "\\", "'", "*"])
async def test_the_search_is_taken_literally(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, typed: str
) -> None:
    await add_customer(session, team.advisor, name="王女士", wechat_id="wx_1")
    await add_customer(session, team.advisor, name="百分之百%", wechat_id="wx-2")
    expected = {"%": ["百分之百%"], "_": ["王女士"]}.get(typed, [])
    assert await names(client, team.headers("advisor"), search=typed) == expected


async def test_name_and_phone_filter_alongside_the_search(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_customer(session, team.advisor, name="王女士", phone="13800001111")
    await add_customer(session, team.advisor, name="王先生", phone="13900002222")
    headers = team.headers("advisor")
    assert await names(client, headers, name="女士") == ["王女士"]
    assert await names(client, headers, phone="2222") == ["王先生"]
    assert await names(client, headers, search="王", phone="1111") == ["王女士"]
    assert await names(client, headers, name="%") == []


# -- the filters ------------------------------------------------------------------------------


async def test_each_filter(client: httpx.AsyncClient, session: AsyncSession, team: Team) -> None:
    a = team.advisor
    await add_customer(
        session, a, name="美团月嫂", lead_source="美团", service_category="月嫂", lead_level="A类"
    )
    await add_customer(
        session,
        a,
        name="抖音家教",
        lead_source="抖音",
        service_category="家教",
        lead_level="B类",
        contract_status="已签约",
        transfer_count=2,
    )
    headers = team.headers("advisor")
    assert await names(client, headers, leadSource="美团") == ["美团月嫂"]
    # Every configured category, 家教 and 陪伴师 included (the original refused those two).
    assert await names(client, headers, serviceCategory="家教") == ["抖音家教"]
    assert await names(client, headers, serviceCategory="陪伴师") == []
    assert await names(client, headers, leadLevel="A类") == ["美团月嫂"]
    assert await names(client, headers, contractStatus="已签约") == ["抖音家教"]
    assert await names(client, headers, leadStatus="已流转") == ["抖音家教"]
    assert await names(client, headers, leadStatus="未流转") == ["美团月嫂"]
    # Accepted as the original's, and of no effect: customers have no caregiver.
    assert sorted(await names(client, headers, caregiverName="张", caregiverPhone="138")) == [
        "抖音家教",
        "美团月嫂",
    ]


async def test_empty_parameters_count_as_not_sent(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_customer(session, team.advisor, name="甲")
    params = dict.fromkeys(
        (
            "page",
            "limit",
            "sortBy",
            "sortOrder",
            "search",
            "name",
            "phone",
            "leadSource",
            "serviceCategory",
            "contractStatus",
            "leadLevel",
            "leadStatus",
            "followUpStatus",
            "assignedTo",
            "createdStartDate",
            "createdEndDate",
            "assignedStartDate",
            "assignedEndDate",
            "caregiverName",
            "caregiverPhone",
        ),
        "",
    )
    data = await listed(client, team.headers("manager"), **params)
    assert [c["name"] for c in data["customers"]] == ["甲"]
    assert (data["page"], data["limit"]) == (1, 10)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": "101"}, "limit", "每页条数不能超过100"),
        ({"limit": "0"}, "limit", "每页条数不能小于1"),
        ({"page": "0"}, "page", "页码不能小于1"),
        ({"sortBy": "age"}, "sortBy", "排序字段必须是：createdAt、updatedAt、name、phone之一"),
        ({"sortOrder": "up"}, "sortOrder", "排序方向必须是：asc或desc"),
        ({"leadStatus": "流转"}, "leadStatus", "流转状态必须是：已流转、未流转之一"),
        (
            {"followUpStatus": "x"},
            "followUpStatus",
            "跟进状态必须是：新客未跟进、流转未跟进、已跟进之一",
        ),
        ({"assignedTo": "nobody"}, "assignedTo", "负责人ID格式不正确"),
        ({"createdStartDate": "2024-13-01"}, "createdStartDate", "日期格式不正确"),
        ({"leadSource": "路边"}, "leadSource", None),
        ({"serviceCategory": "司机"}, "serviceCategory", None),
        ({"contractStatus": "x"}, "contractStatus", None),
        ({"leadLevel": "Z类"}, "leadLevel", None),
        ({"search": "长" * 65}, "search", "不能超过64个字符"),
        ({"unknown": "1"}, "unknown", "不允许的字段"),
    ],
)
@pytest.mark.parametrize("endpoint", ["list", "statistics"])
async def test_a_bad_parameter_is_a_400_naming_it(
    client: httpx.AsyncClient,
    team: Team,
    endpoint: str,
    params: dict[str, str],
    field: str,
    message: str | None,
) -> None:
    response = await client.get(
        f"{BASE}/{endpoint}", params=params, headers=team.headers("advisor")
    )
    [detail] = assert_error(response, 400, "VALIDATION_ERROR")["error"]["details"]
    assert detail["field"] == field
    if message is not None:
        assert detail["message"] == message
    else:
        assert "必须是" in detail["message"]


async def test_a_page_or_limit_that_is_no_number_is_the_default(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_customer(session, team.advisor)
    data = await listed(client, team.headers("advisor"), page="undefined", limit="NaN")
    assert (data["page"], data["limit"], data["total"]) == (1, 10, 1)


async def test_dates_are_beijing_days(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    a = team.advisor
    # 23:30 on the 1st in Beijing is still the 1st there, though the 2nd has not begun in UTC.
    await add_customer(
        session, a, name="一号深夜", created_at=beijing("2024-03-01", 23) + timedelta(minutes=30)
    )
    await add_customer(
        session, a, name="二号凌晨", created_at=beijing("2024-03-02", 0) + timedelta(minutes=10)
    )
    await add_customer(
        session, a, name="三号", created_at=beijing("2024-03-03"), assigned_at=beijing("2024-03-10")
    )
    headers = team.headers("advisor")

    async def created(**params: str) -> list[str]:
        return sorted(await names(client, headers, **params))

    assert await created(createdEndDate="2024-03-01") == ["一号深夜"]
    assert await created(createdStartDate="2024-03-02", createdEndDate="2024-03-02") == ["二号凌晨"]
    assert await created(createdStartDate="2024-03-02") == ["三号", "二号凌晨"]
    # An ISO time (a picker's Date) is read as its Beijing day.
    assert await created(createdEndDate="2024-03-01T16:30:00.000Z") == ["一号深夜", "二号凌晨"]
    assert await created(assignedStartDate="2024-03-10", assignedEndDate="2024-03-10") == ["三号"]


async def test_sorting_is_across_pages_with_no_reordering_inside_a_page(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    # Names that sort alike under every database's collation.
    for n, name in enumerate(["客户c", "客户a", "客户b", "客户e", "客户d"]):
        await add_customer(
            session,
            team.advisor,
            name=name,
            phone=f"1380000000{n}",
            created_at=start + timedelta(days=n),
            updated_at=start + timedelta(days=10 - n),
        )
    headers = team.headers("advisor")

    async def pages(**params: str) -> list[str]:
        first = await names(client, headers, limit=2, page=1, **params)
        second = await names(client, headers, limit=2, page=2, **params)
        third = await names(client, headers, limit=2, page=3, **params)
        return first + second + third

    created = ["客户c", "客户a", "客户b", "客户e", "客户d"]
    assert await pages() == created[::-1]  # createdAt, newest first
    assert await pages(sortOrder="asc") == created
    assert await pages(sortBy="updatedAt") == created
    assert await pages(sortBy="updatedAt", sortOrder="asc") == created[::-1]
    assert await pages(sortBy="phone", sortOrder="asc") == created
    assert await pages(sortBy="name", sortOrder="asc") == sorted(created)
    assert await pages(sortBy="name") == sorted(created, reverse=True)
    page = await listed(client, headers, limit=2, page=2)
    assert (page["total"], page["totalPages"], page["hasMore"]) == (5, 3, True)
    last = await listed(client, headers, limit=2, page=3)
    assert last["hasMore"] is False


# -- statistics -------------------------------------------------------------------------------


async def test_statistics_as_the_original_per_role(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_customer(
        session, team.advisor, name="甲", lead_source="美团", service_category="月嫂"
    )
    await add_customer(session, team.advisor, name="乙", contract_status="流失客户")
    await add_customer(session, team.other, name="丙", lead_source="美团", transfer_count=1)
    await add_customer(session, None, name="公海")  # never counted
    message = "统计信息获取成功"
    manager = ok(await client.get(f"{BASE}/statistics", headers=team.headers("manager")), message)
    assert manager == {
        "total": 3,
        "byContractStatus": {"待定": 2, "流失客户": 1},  # 流失客户 counted, unlike the list
        "byLeadSource": {"美团": 2, "其他": 1},
        "byServiceCategory": {"月嫂": 1, "null": 2},
    }
    advisor = ok(await client.get(f"{BASE}/statistics", headers=team.headers("advisor")), message)
    assert advisor == {"total": 2, "myCustomers": 2, "byContractStatus": {"待定": 1, "流失客户": 1}}

    async def total(**params: str) -> int:
        response = await client.get(
            f"{BASE}/statistics", params=params, headers=team.headers("admin")
        )
        return int(ok(response, message)["total"])

    assert await total(search="甲") == 1
    assert await total(leadStatus="已流转") == 1
    assert await total(assignedTo=team.other.id) == 1
    # The list's other filters are accepted and, as in the original, do not narrow the counts.
    assert await total(contractStatus="待定", leadSource="美团") == 3


# -- today's numbers --------------------------------------------------------------------------


def follow_up(customer_id: str, user_id: str, due: datetime | None) -> FollowUp:
    return FollowUp(
        customer_id=customer_id, user_id=user_id, method="电话", content="x", next_follow_up_at=due
    )


async def test_today_and_this_month_in_beijing_days(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    now = utcnow()
    today = clock.day_start(clock.today())
    before_month = clock.day_start(clock.today().replace(day=1)) - timedelta(minutes=1)
    mine = team.advisor
    made = await add_customer(session, mine, created_by_id=mine.id, created_at=now)
    given = await add_customer(session, mine, created_at=before_month)  # assigned now
    await add_customer(session, mine, created_at=before_month, last_follow_up_at=now)
    signed = await add_customer(
        session,
        mine,
        created_at=before_month,
        assigned_at=before_month,
        contract_status="已签约",
        signed_at=today + timedelta(minutes=1),
        last_follow_up_at=now,
    )
    await add_customer(session, team.other, created_at=now, signed_at=now)
    await add_customer(session, None, created_at=now)  # the pool's: never counted
    # Planned for today, then called early with nothing planned: no longer due (the
    # reminders' rule); and a pool customer's plan is nobody's.
    replanned = await add_customer(
        session, mine, created_at=before_month, assigned_at=before_month, last_follow_up_at=now
    )
    pooled = await add_customer(session, None, created_at=before_month)
    early, later = (
        follow_up(replanned.id, mine.id, today + timedelta(hours=15)),
        follow_up(replanned.id, mine.id, None),
    )
    early.created_at, later.created_at = now - timedelta(hours=2), now - timedelta(hours=1)
    session.add_all(
        [
            follow_up(made.id, mine.id, today + timedelta(hours=1)),
            follow_up(given.id, mine.id, today + timedelta(hours=23, minutes=59)),
            follow_up(signed.id, mine.id, today - timedelta(minutes=1)),  # yesterday's
            early,
            later,
            follow_up(pooled.id, mine.id, today + timedelta(hours=9)),
        ]
    )
    await session.commit()

    message = "客户信息统计获取成功"
    path = f"{BASE}/today-todo-stats"
    assert ok(await client.get(path, headers=team.headers("advisor")), message) == {
        "totalLeads": 5,
        # Made by the advisor, or given to it and not followed up yet.
        "monthAssigned": 2,
        "todayAssigned": 2,
        "pendingLeads": 2,
        "todaySigned": 1,
        "followUpsDueToday": 2,
        "isAdmin": False,
    }
    for role in ("admin", "manager"):
        assert ok(await client.get(path, headers=team.headers(role)), message) == {
            "totalLeads": 6,
            "monthAssigned": 2,
            "todayAssigned": 2,
            "pendingLeads": 3,
            "todaySigned": 2,
            "followUpsDueToday": 2,
            "isAdmin": True,
        }
    # The query is no concern of this endpoint's (the original had none).
    assert ok(await client.get(path, params={"x": "1"}, headers=team.headers("admin")), message)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_customers_without_a_phone_sort_last_by_phone(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, order: str
) -> None:
    wechat_only = await add_customer(session, team.advisor, name="微信客户", wechat_id="wx-only")
    await session.execute(update(Customer).where(Customer.id == wechat_only.id).values(phone=None))
    await session.commit()
    await add_customer(session, team.advisor, name="一三八", phone="13800000000")
    await add_customer(session, team.advisor, name="一三九", phone="13800000009")
    found = await names(client, team.headers("advisor"), sortBy="phone", sortOrder=order)
    numbered = ["一三八", "一三九"] if order == "asc" else ["一三九", "一三八"]
    assert found == [*numbered, "微信客户"]
