"""The customers API for every endpoint and every role: who may do what, data permissions
(an advisor's customers are its own), the list's search, filters, sorting and pages,
create and update checks, follow-ups and the detail's timeline, bad ids and no token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.customers.conftest import Team, count
from tests.factories import add_customer, add_user, staff_headers
from wxcrm.core.ids import new_id
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.models import AssignmentHistory, Customer, CustomerAction, FollowUp
from wxcrm.notifications.models import Notification
from wxcrm.users.models import Role
from wxcrm.wechat.keywords import SHANGHAI

# Every endpoint of the customers router: (method, path, body). In paths and bodies, {id}
# is a customer of `team.advisor` and {to} is `team.other`, the assignee. (The staff mini
# program's endpoints answer in the original's own way: tests/customers/staffapp/.)
ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "list": ("GET", "/api/customers", None),
    "options": ("GET", "/api/customers/options", None),
    "create": ("POST", "/api/customers", {"name": "新客户", "phone": "13600000001"}),
    "detail": ("GET", "/api/customers/{id}", None),
    "update": ("PATCH", "/api/customers/{id}", {"remarks": "已电话沟通", "leadLevel": "A类"}),
    "delete": ("DELETE", "/api/customers/{id}", None),
    "add follow-up": (
        "POST",
        "/api/customers/{id}/follow-ups",
        {"method": "电话", "content": "了解了需求"},
    ),
    "list follow-ups": ("GET", "/api/customers/{id}/follow-ups", None),
    "assign": ("PATCH", "/api/customers/{id}/assign", {"assignedTo": "{to}"}),
    "batch assign": (
        "POST",
        "/api/customers/batch-assign",
        {"customerIds": ["{id}"], "assignedTo": "{to}"},
    ),
    "pool assign": (
        "POST",
        "/api/customers/public-pool/assign",
        {"customerIds": ["{id}"], "assignedTo": "{to}"},
    ),
}
ON_ONE_CUSTOMER = [name for name, (_, path, _) in ENDPOINTS.items() if "{id}" in path]
MANAGERS_ONLY = {"delete", "assign", "batch assign", "pool assign"}

# (role, endpoint, status) on a customer of the advisor's own.
ADMINS_ONLY = {"delete"}
ROLE_TABLE = [
    (
        role,
        endpoint,
        403
        if (role == "advisor" and endpoint in MANAGERS_ONLY)
        or (role != "admin" and endpoint in ADMINS_ONLY)
        else 200,
    )
    for role in ("admin", "manager", "advisor")
    for endpoint in ENDPOINTS
]
# Another advisor on that customer: hidden (404) where reading, forbidden (403) by role.
OTHER_ADVISOR_TABLE = [
    ("detail", 404),
    ("update", 404),
    ("delete", 403),
    ("add follow-up", 404),
    ("list follow-ups", 404),
    ("assign", 403),
    ("batch assign", 403),
    ("pool assign", 403),
]


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in values.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    return value


async def call(
    client: httpx.AsyncClient,
    endpoint: str,
    headers: dict[str, str] | None,
    **values: str,
) -> httpx.Response:
    method, path, body = ENDPOINTS[endpoint]
    return await client.request(
        method, _fill(path, values), json=_fill(body, values), headers=headers
    )


async def snapshot(session: AsyncSession, customer_id: str) -> dict[str, Any]:
    """The customer's row as stored, and what hangs off it, read afresh from the database."""
    columns = Customer.__table__.columns
    row = (
        (await session.execute(select(*columns).where(columns.id == customer_id)))
        .mappings()
        .one_or_none()
    )
    return {
        "row": dict(row) if row else None,
        "follow_ups": await count(session, FollowUp, FollowUp.customer_id == customer_id),
        "history": await count(
            session, AssignmentHistory, AssignmentHistory.customer_id == customer_id
        ),
        "notifications": await count(session, Notification),
    }


def data_of(response: httpx.Response, message: str | None = None) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and isinstance(body["timestamp"], int)
    if message is not None:
        assert body["message"] == message
    return body["data"]


def names(page: dict[str, Any]) -> list[str]:
    return [item["name"] for item in page["items"]]


async def list_names(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[str]:
    response = await client.get("/api/customers", params=params, headers=headers)
    return names(data_of(response, "获取客户列表成功"))


def shanghai(text: str) -> datetime:
    """A wall-clock time in China as a UTC moment."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(UTC)


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- who may do what --------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "endpoint", "status"), ROLE_TABLE)
async def test_what_each_role_may_do(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    role: str,
    endpoint: str,
    status: int,
) -> None:
    customer = await add_customer(session, team.advisor)
    before = await snapshot(session, customer.id)
    response = await call(client, endpoint, team.headers(role), id=customer.id, to=team.other.id)
    if status != 200:
        assert_error(response, status, "FORBIDDEN")
        assert await snapshot(session, customer.id) == before
        return
    data = data_of(response)
    after = await snapshot(session, customer.id)
    row = after["row"]
    # What each call did, read back from the database.
    if endpoint in ("list", "options", "detail", "list follow-ups"):
        assert after == before
    if endpoint == "list":
        assert [item["_id"] for item in data["items"]] == [customer.id]
    elif endpoint == "options":
        assert set(data) == {
            "leadSource",
            "serviceCategory",
            "contractStatus",
            "leadLevel",
            "restSchedule",
            "educationRequirement",
        }
    elif endpoint == "create":
        created = (await snapshot(session, data["_id"]))["row"]
        assert (
            created["phone"] == "13600000001" and created["created_by_id"] == team.member(role).id
        )
    elif endpoint == "detail":
        assert data["_id"] == customer.id and data["timeline"] == []
    elif endpoint == "update":
        assert (row["lead_level"], row["remark"]) == ("A类", "已电话沟通")
    elif endpoint == "delete":
        assert data is None and row is None
    elif endpoint == "add follow-up":
        assert after["follow_ups"] == 1 and row["last_follow_up_at"] is not None
    elif endpoint == "list follow-ups":
        assert data["items"] == [] and data["total"] == 0
    elif endpoint == "pool assign":  # the customer is owned, not in the pool
        assert (data["success"], data["failed"]) == (0, 1) and after == before
    else:  # the two other assignments
        assert row["owner_id"] == team.other.id and after["history"] == 1


@pytest.mark.parametrize(("endpoint", "status"), OTHER_ADVISOR_TABLE)
async def test_an_advisor_cannot_touch_another_advisors_customer(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    endpoint: str,
    status: int,
) -> None:
    customer = await add_customer(session, team.advisor, name="别人的客户")
    before = await snapshot(session, customer.id)
    response = await call(client, endpoint, team.headers("other"), id=customer.id, to=team.other.id)
    assert_error(response, status, "NOT_FOUND" if status == 404 else "FORBIDDEN")
    assert await snapshot(session, customer.id) == before


@pytest.mark.parametrize("endpoint", ["detail", "update", "add follow-up", "list follow-ups"])
async def test_an_advisor_cannot_touch_a_customer_of_the_public_pool(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, endpoint: str
) -> None:
    customer = await add_customer(session, None)
    before = await snapshot(session, customer.id)
    response = await call(client, endpoint, team.headers("advisor"), id=customer.id)
    assert_error(response, 404, "NOT_FOUND")
    assert await snapshot(session, customer.id) == before


@pytest.mark.parametrize(
    ("endpoint", "headers"),
    [(endpoint, None) for endpoint in ENDPOINTS]
    + [
        ("detail", {"Authorization": "Bearer not-a-token"}),
        ("update", {"Authorization": "Basic abc"}),
        ("assign", {"Authorization": "Bearer "}),
    ],
)
async def test_every_endpoint_needs_a_staff_token(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    endpoint: str,
    headers: dict[str, str] | None,
) -> None:
    customer = await add_customer(session, team.advisor)
    before = await snapshot(session, customer.id)
    response = await call(client, endpoint, headers, id=customer.id, to=team.other.id)
    assert_error(response, 401, "UNAUTHORIZED")
    assert await snapshot(session, customer.id) == before


async def test_an_inactive_users_token_no_longer_works(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    manager = await add_user(session, Role.manager, active=False)
    response = await client.get("/api/customers", headers=staff_headers(manager))
    assert_error(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    ("endpoint", "bad_id"),
    [(endpoint, "not-an-id") for endpoint in ON_ONE_CUSTOMER]
    + [("detail", "0123456789ABCDEF01234567"), ("update", "0123456789abcdef")],
)
async def test_a_malformed_id_is_a_400(
    client: httpx.AsyncClient, team: Team, endpoint: str, bad_id: str
) -> None:
    response = await call(client, endpoint, team.headers("manager"), id=bad_id, to=team.other.id)
    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "endpoint",
    [
        "detail",
        "update",
        "delete",
        "add follow-up",
        "list follow-ups",
        "assign",
    ],
)
async def test_an_unknown_id_is_a_404(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, endpoint: str
) -> None:
    response = await call(client, endpoint, team.headers("admin"), id=new_id(), to=team.other.id)
    assert_error(response, 404, "NOT_FOUND")
    assert await count(session, AssignmentHistory) == 0
    assert await count(session, Notification) == 0


# -- the list: who sees what --------------------------------------------------------------------


async def test_advisors_see_only_their_own_and_managers_see_all(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_customer(session, team.advisor, name="甲")
    await add_customer(session, team.advisor, name="乙")
    await add_customer(session, team.other, name="丙")
    await add_customer(session, None, name="丁")
    advisor = team.headers("advisor")
    assert sorted(await list_names(client, advisor)) == ["乙", "甲"]
    assert sorted(await list_names(client, team.headers("other"))) == ["丙"]
    assert await list_names(client, advisor, assignedTo=team.other.id) == []
    assert await list_names(client, advisor, inPublicPool="true") == []
    assert await list_names(client, advisor, search="丙") == []
    for role in ("manager", "admin"):
        everyone = data_of(await client.get("/api/customers", headers=team.headers(role)))
        assert sorted(names(everyone)) == sorted(["甲", "乙", "丙", "丁"])
        assert everyone["total"] == 4


async def test_the_options_are_the_configured_lists(
    client: httpx.AsyncClient, team: Team, settings: Settings
) -> None:
    data = data_of(await client.get("/api/customers/options", headers=team.headers("advisor")))
    assert data == {
        "leadSource": settings.lead_sources,
        "serviceCategory": settings.service_categories,
        "contractStatus": settings.contract_statuses,
        "leadLevel": settings.lead_levels,
        "restSchedule": ["单休", "双休", "无休", "调休", "待定"],
        "educationRequirement": [
            "无学历",
            "小学",
            "初中",
            "中专",
            "职高",
            "高中",
            "大专",
            "本科",
            "研究生及以上",
        ],
    }
    assert data["leadSource"][:3] == ["美团", "抖音", "快手"] and data["leadSource"][-1] == "其他"
    assert len(data["serviceCategory"]) == 11 and "陪伴师" in data["serviceCategory"]
    assert data["leadLevel"] == ["O类", "A类", "B类", "C类", "D类", "流失"]


# -- the list: search, filters, sorting, pages ------------------------------------------------


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("张", ["张三", "张小花"]),
        ("小花", ["张小花"]),
        ("  张三  ", ["张三"]),
        ("138", ["张三", "李四"]),
        ("1381111", ["张三"]),
        ("13822224444", ["李四"]),
        ("139", ["张小花"]),
        ("CUS00000000042", ["李四"]),
        ("CUS0000000004", ["李四"]),
        ("cus00000000042", ["李四"]),
        ("CUS2", ["张三", "张小花"]),
        ("王", []),
        ("%", []),
        ("_", []),
        ("13833", []),
        # Latin letters match whatever their case, on every database.
        ("anna", ["Anna Wu"]),
        ("WU", ["Anna Wu"]),
        # Longer terms, spaces in them: the name's pieces narrow, the whole term decides.
        ("张小花", ["张小花"]),
        ("a w", ["Anna Wu"]),
        ("ANNA WU", ["Anna Wu"]),
        ("Anna Wux", []),
        ("花张", []),
    ],
)
async def test_search_by_name_phone_prefix_or_customer_number(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    search: str,
    expected: list[str],
) -> None:
    await add_customer(session, team.advisor, name="张三", phone="13811112222")
    await add_customer(session, team.other, name="张小花", phone="13911113333")
    await add_customer(session, None, name="李四", phone="13822224444")
    await add_customer(session, None, name="Anna Wu", phone="13733334444")
    # Fixed numbers: a random one could start with the digits searched for.
    numbers = {
        "张三": "CUS20000000001",
        "张小花": "CUS20000000002",
        "李四": "CUS00000000042",
        "Anna Wu": "CUS30000000003",
    }
    for customer in await session.scalars(select(Customer)):
        customer.customer_no = numbers[customer.name]
    await session.commit()
    found = await list_names(client, team.headers("manager"), search=search)
    assert sorted(found) == sorted(expected)


async def test_a_broad_search_counts_to_a_thousand_and_still_pages_on(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    """Past 1,000 matches a text search's total is a lower bound (1,001), not a count of
    every match; the pages go on as far as the matches do, in both lists."""
    now = utcnow()
    await session.execute(
        insert(Customer),
        [
            {
                "id": new_id(),
                "customer_no": f"CUS9{n:010d}",
                "name": f"王某{n}",
                "phone": f"1370000{n:04d}",
                "owner_id": team.advisor.id,
                "assigned_at": now,
                "created_at": now - timedelta(seconds=n),
                "updated_at": now,
            }
            for n in range(1_030)
        ],
    )
    await add_customer(session, team.advisor, name="李某")
    await session.commit()
    headers = team.headers("manager")
    first = data_of(await client.get("/api/customers", params={"search": "王某"}, headers=headers))
    assert first["total"] == 1_001
    assert names(first)[0] == "王某0"
    last = data_of(
        await client.get(
            "/api/customers", params={"search": "王某", "page": 52, "limit": 20}, headers=headers
        )
    )
    assert names(last) == [f"王某{n}" for n in range(1_020, 1_030)]
    assert last["total"] == 1_030  # the last page's end: every match was read
    narrow = data_of(
        await client.get("/api/customers", params={"search": "王某10"}, headers=headers)
    )
    assert narrow["total"] == 41  # 王某10, 王某100…王某109, 王某1000…王某1029: counted exactly
    staff = await client.get(
        "/api/customers/miniprogram/list",
        params={"search": "王某", "page": 2, "limit": 50},
        headers=headers,
    )
    page = staff.json()["data"]
    assert page["total"] == 1_001 and page["hasMore"] is True
    assert [c["name"] for c in page["customers"]][:2] == ["王某50", "王某51"]


async def test_a_renamed_customer_is_found_by_its_new_name_only(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, name="王大锤")
    await add_customer(session, team.advisor, name="王小锤")
    headers = team.headers("manager")
    renamed = await client.patch(
        f"/api/customers/{customer.id}", json={"name": "赵铁柱"}, headers=headers
    )
    assert renamed.status_code == 200, renamed.text
    assert await list_names(client, headers, search="铁柱") == ["赵铁柱"]
    assert await list_names(client, headers, search="大锤") == []
    assert await list_names(client, headers, search="锤") == ["王小锤"]
    deleted = await client.delete(f"/api/customers/{customer.id}", headers=team.headers("admin"))
    assert deleted.status_code == 200, deleted.text
    assert await list_names(client, headers, search="铁柱") == []


FILTER_CASES: list[tuple[dict[str, str], list[str]]] = [
    ({"contractStatus": "已签约"}, ["A", "D"]),
    ({"leadSource": "美团"}, ["A", "C"]),
    ({"serviceCategory": "月嫂"}, ["A", "C"]),
    ({"leadLevel": "B类"}, ["B"]),
    ({"assignedTo": "{advisor}"}, ["A", "D"]),
    ({"assignedTo": "{other}"}, ["B"]),
    ({"inPublicPool": "true"}, ["C"]),
    ({"inPublicPool": "false"}, ["A", "B", "D"]),
    # Days are China's: B was made at 00:30 on 2 March in Shanghai (16:30 UTC on 1 March).
    ({"createdFrom": "2024-03-02"}, ["B", "C", "D"]),
    ({"createdTo": "2024-03-01"}, ["A"]),
    ({"createdFrom": "2024-03-02", "createdTo": "2024-03-02"}, ["B"]),
    ({"createdFrom": "2024-03-03", "createdTo": "2024-03-04"}, ["C", "D"]),
    ({"createdFrom": "2024-03-05"}, []),
    ({"contractStatus": "已签约", "leadLevel": "C类"}, ["D"]),
    ({"leadSource": "美团", "inPublicPool": "false"}, ["A"]),
    ({"contractStatus": "不存在的状态"}, []),
]


@pytest.mark.parametrize(("params", "expected"), FILTER_CASES)
async def test_each_filter(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    params: dict[str, str],
    expected: list[str],
) -> None:
    rows = [
        ("A", team.advisor, "已签约", "美团", "月嫂", "A类", "2024-03-01T23:30:00"),
        ("B", team.other, "匹配中", "抖音", "保洁", "B类", "2024-03-02T00:30:00"),
        ("C", None, "待定", "美团", "月嫂", None, "2024-03-03T12:00:00"),
        ("D", team.advisor, "已签约", "其他", None, "C类", "2024-03-04T09:00:00"),
    ]
    for name, owner, status, source, category, level, created in rows:
        await add_customer(
            session,
            owner,
            name=name,
            contract_status=status,
            lead_source=source,
            service_category=category,
            lead_level=level,
            created_at=shanghai(created),
        )
    query = _fill(params, {"advisor": team.advisor.id, "other": team.other.id})
    page = data_of(await client.get("/api/customers", params=query, headers=team.headers("admin")))
    assert sorted(names(page)) == expected
    assert page["total"] == len(expected)


# name → (phone, createdAt, updatedAt, lastFollowUpTime) as hours after a base time; each
# field orders the four customers differently.
SORT_ROWS = {
    "客户A": ("13700000004", 2, 1, 3),
    "客户B": ("13700000003", 0, 3, 1),
    "客户C": ("13700000002", 3, 0, 2),
    "客户D": ("13700000001", 1, 2, 0),
}
SORT_KEYS = {
    "name": lambda name: name,
    "phone": lambda name: SORT_ROWS[name][0],
    "createdAt": lambda name: SORT_ROWS[name][1],
    "updatedAt": lambda name: SORT_ROWS[name][2],
    "lastFollowUpTime": lambda name: SORT_ROWS[name][3],
}


async def _add_sort_rows(session: AsyncSession, team: Team) -> None:
    base = datetime(2024, 5, 1, tzinfo=UTC)
    for name, (phone, created, updated, followed) in SORT_ROWS.items():
        await add_customer(
            session,
            team.advisor,
            name=name,
            phone=phone,
            created_at=base + timedelta(hours=created),
            updated_at=base + timedelta(hours=updated),
            last_follow_up_at=base + timedelta(hours=followed),
        )


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("field", list(SORT_KEYS))
async def test_sort_by_each_field_both_ways(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, field: str, order: str
) -> None:
    await _add_sort_rows(session, team)
    found = await list_names(client, team.headers("advisor"), sortBy=field, sortOrder=order)
    assert found == sorted(SORT_ROWS, key=SORT_KEYS[field], reverse=order == "desc")


async def test_the_default_order_is_newest_first(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await _add_sort_rows(session, team)
    found = await list_names(client, team.headers("advisor"))
    assert found == sorted(SORT_ROWS, key=SORT_KEYS["createdAt"], reverse=True)


async def test_customers_never_followed_up_sort_as_the_longest_ago(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    """The same order on every database: most recent follow-up first, never last."""
    now = utcnow()
    await add_customer(session, team.advisor, name="从未跟进")
    await add_customer(session, team.advisor, name="昨天", last_follow_up_at=now - timedelta(1))
    await add_customer(session, team.advisor, name="今天", last_follow_up_at=now)
    headers = team.headers("advisor")
    newest = await list_names(client, headers, sortBy="lastFollowUpTime", sortOrder="desc")
    oldest = await list_names(client, headers, sortBy="lastFollowUpTime", sortOrder="asc")
    assert newest == ["今天", "昨天", "从未跟进"]
    assert oldest == ["从未跟进", "昨天", "今天"]


async def test_pages(client: httpx.AsyncClient, session: AsyncSession, team: Team) -> None:
    base = datetime(2024, 6, 1, tzinfo=UTC)
    for n in range(7):
        await add_customer(session, team.advisor, name=f"第{n}", created_at=base + timedelta(n))
    headers = team.headers("advisor")
    pages = [
        data_of(await client.get("/api/customers", params={"page": p, "limit": 3}, headers=headers))
        for p in (1, 2, 3, 4)
    ]
    assert [len(page["items"]) for page in pages] == [3, 3, 1, 0]
    for number, page in enumerate(pages, start=1):
        assert (page["page"], page["limit"], page["total"], page["totalPages"]) == (number, 3, 7, 3)
    assert [name for page in pages for name in names(page)] == [f"第{n}" for n in range(6, -1, -1)]
    default = data_of(await client.get("/api/customers", headers=headers))
    assert (default["page"], default["limit"], default["totalPages"]) == (1, 20, 1)
    empty = data_of(
        await client.get("/api/customers", params={"search": "无此人"}, headers=headers)
    )
    assert (empty["items"], empty["total"], empty["totalPages"]) == ([], 0, 0)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"sortBy": "password"}, "sortBy"),
        ({"sortOrder": "up"}, "sortOrder"),
        ({"assignedTo": "abc"}, "assignedTo"),
        ({"inPublicPool": "maybe"}, "inPublicPool"),
        ({"createdFrom": "2024-13-01"}, "createdFrom"),
        ({"createdTo": "yesterday"}, "createdTo"),
        ({"search": "x" * 65}, "search"),
    ],
)
async def test_bad_list_parameters_are_a_400_naming_the_parameter(
    client: httpx.AsyncClient, team: Team, params: dict[str, str], field: str
) -> None:
    response = await client.get("/api/customers", params=params, headers=team.headers("manager"))
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert [d["field"] for d in body["error"]["details"]] == [field]


# -- create -------------------------------------------------------------------------------------


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> httpx.Response:
    body = {"name": "张三", "phone": "13800138000"} | fields
    return await client.post("/api/customers", json=body, headers=headers)


@pytest.mark.parametrize(
    "typed", ["13800138000", "138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "8613800138000"]
)
async def test_create_normalises_the_phone(
    client: httpx.AsyncClient, team: Team, typed: str
) -> None:
    data = data_of(await create(client, team.headers("manager"), phone=typed), "创建客户成功")
    assert data["phone"] == "13800138000"


async def test_create_fills_the_record(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    fields = {
        "name": "王女士",
        "phone": "13800138001",
        "wechatId": "wx-wang",
        "leadSource": "小红书",
        "serviceCategory": "月嫂",
        "contractStatus": "匹配中",
        "leadLevel": "A类",
        "address": "杭州市西湖区",
        "remarks": "预产期三月",
    }
    data = data_of(await create(client, team.headers("advisor"), **fields))
    assert {key: data[key] for key in fields} == fields
    assert data["customerId"].startswith("CUS") and len(data["customerId"]) == 14
    assert data["customerId"][3:].isdigit()
    # An advisor's new customer is its own; a manager's starts in the public pool.
    assert data["assignedTo"] == team.advisor.id and data["inPublicPool"] is False
    assert data["createdBy"] == team.advisor.id and data["isFrozen"] is False
    stored = await session.get(Customer, data["_id"])
    assert stored is not None and stored.owner_id == team.advisor.id
    pooled = data_of(await create(client, team.headers("manager"), phone="13800138002"))
    assert pooled["assignedTo"] is None and pooled["inPublicPool"] is True
    assert pooled["leadSource"] == "其他" and pooled["contractStatus"] == "待定"
    assert pooled["publicPoolEntryTime"] is not None


@pytest.mark.parametrize("typed", ["13800138000", "+86 138-0013-8000"])
async def test_create_with_a_known_phone_is_a_409(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, typed: str
) -> None:
    await add_customer(session, team.other, phone="13800138000")
    # An advisor learns nothing of the other customer but that the phone is taken.
    body = assert_error(await create(client, team.headers("advisor"), phone=typed), 409, "CONFLICT")
    assert body["message"] == "该手机号已被其他客户使用"
    assert body["error"]["details"] == [{"field": "phone", "message": "该手机号已被其他客户使用"}]
    assert await count(session, Customer) == 1


@pytest.mark.parametrize("field", ["leadSource", "serviceCategory", "contractStatus", "leadLevel"])
@pytest.mark.parametrize("value", ["不存在", ""])
async def test_create_with_a_value_not_in_its_list_is_a_400_naming_the_field(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, field: str, value: str
) -> None:
    response = await create(client, team.headers("manager"), **{field: value})
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert [d["field"] for d in body["error"]["details"]] == [field]
    assert await count(session, Customer) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "13800138000"}, "name"),
        ({"name": "张三"}, "phone"),
        ({"name": "", "phone": "13800138000"}, "name"),
        ({"name": "   ", "phone": "13800138000"}, "name"),
        ({"name": "张" * 65, "phone": "13800138000"}, "name"),
        ({"name": "张三", "phone": "12345678901"}, "phone"),
        ({"name": "张三", "phone": "1380013800"}, "phone"),
        ({"name": "张三", "phone": "1" * 33}, "phone"),
        ({"name": "张三", "phone": "13800138000", "wechatId": "w" * 65}, "wechatId"),
        ({"name": "张三", "phone": "13800138000", "address": "路" * 256}, "address"),
        ({"name": "张三", "phone": "13800138000", "remarks": "备" * 2001}, "remarks"),
        ({"name": "张三", "phone": "13800138000", "leadLevel": "A" * 9}, "leadLevel"),
        ({"name": "张三", "phone": "13800138000", "assignedTo": new_id()}, "assignedTo"),
        ({"name": 123, "phone": "13800138000"}, "name"),
        ({"name": "张三", "phone": 13800138000}, "phone"),
    ],
)
async def test_create_with_missing_too_long_or_bad_fields_is_a_400(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await client.post("/api/customers", json=body, headers=team.headers("manager"))
    details = assert_error(response, 400, "VALIDATION_ERROR")["error"]["details"]
    assert [d["field"] for d in details] == [field]
    assert await count(session, Customer) == 0


async def test_create_with_a_body_that_is_not_an_object_is_a_400(
    client: httpx.AsyncClient, team: Team
) -> None:
    headers = team.headers("manager")
    for content in (b"[]", b"not json", b""):
        response = await client.post(
            "/api/customers",
            content=content,
            headers=headers | {"content-type": "application/json"},
        )
        assert_error(response, 400, "VALIDATION_ERROR")


# -- update -------------------------------------------------------------------------------------


async def update(
    client: httpx.AsyncClient, headers: dict[str, str], customer_id: str, **fields: Any
) -> httpx.Response:
    return await client.patch(f"/api/customers/{customer_id}", json=fields, headers=headers)


async def test_an_advisor_updates_its_own_customer(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, name="旧名字")
    changes = {
        "name": "新名字",
        "phone": "139-1234-5678",
        "wechatId": "wx-new",
        "leadSource": "抖音",
        "serviceCategory": "保洁",
        "contractStatus": "已面试",
        "leadLevel": "A类",
        "address": "上海",
        "remarks": "改了",
    }
    data = data_of(
        await update(client, team.headers("advisor"), customer.id, **changes), "更新客户成功"
    )
    assert {key: data[key] for key in changes} == changes | {"phone": "13912345678"}
    stored = (await snapshot(session, customer.id))["row"]
    assert stored["name"] == "新名字" and stored["phone"] == "13912345678"
    assert stored["remark"] == "改了" and stored["owner_id"] == team.advisor.id
    # Only what is sent changes; null clears an optional field.
    data = data_of(await update(client, team.headers("advisor"), customer.id, address=None))
    assert data["address"] is None and data["name"] == "新名字" and data["leadLevel"] == "A类"


async def test_update_to_a_phone_of_another_customer_is_a_409(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, phone="13800138000")
    await add_customer(session, team.other, phone="13800138001")
    before = await snapshot(session, customer.id)
    response = await update(client, team.headers("advisor"), customer.id, phone="138 0013 8001")
    body = assert_error(response, 409, "CONFLICT")
    assert body["error"]["details"] == [{"field": "phone", "message": "该手机号已被其他客户使用"}]
    assert await snapshot(session, customer.id) == before
    # Its own number, however typed, is no conflict.
    same = await update(client, team.headers("advisor"), customer.id, phone="+8613800138000")
    assert data_of(same)["phone"] == "13800138000"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"leadSource": "不存在"}, "leadSource"),
        ({"serviceCategory": "不存在"}, "serviceCategory"),
        ({"contractStatus": "不存在"}, "contractStatus"),
        ({"leadLevel": "Z类"}, "leadLevel"),
        ({"phone": "12345"}, "phone"),
        ({"phone": ""}, "phone"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": "名" * 65}, "name"),
        ({"address": "址" * 256}, "address"),
        ({"remarks": "备" * 2001}, "remarks"),
        ({"wechatId": "w" * 65}, "wechatId"),
        ({"isFrozen": "sometimes"}, "isFrozen"),
        ({"assignedTo": "0123456789abcdef01234567"}, "assignedTo"),
        ({"customerId": "CUS00000000001"}, "customerId"),
        # Required columns cannot be emptied.
        ({"phone": None}, "phone"),
        ({"leadSource": None}, "leadSource"),
        ({"contractStatus": None}, "contractStatus"),
        ({"isFrozen": None}, "isFrozen"),
    ],
)
async def test_update_checks_what_create_checks(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    fields: dict[str, Any],
    field: str,
) -> None:
    customer = await add_customer(session, team.advisor)
    before = await snapshot(session, customer.id)
    response = await update(client, team.headers("manager"), customer.id, **fields)
    details = assert_error(response, 400, "VALIDATION_ERROR")["error"]["details"]
    assert [d["field"] for d in details] == [field]
    assert await snapshot(session, customer.id) == before


@pytest.mark.parametrize("role", ["admin", "manager"])
async def test_managers_freeze_and_unfreeze(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, role: str
) -> None:
    customer = await add_customer(session, team.advisor)
    headers = team.headers(role)
    frozen = await update(client, headers, customer.id, isFrozen=True, frozenReason="客户投诉")
    assert data_of(frozen)["isFrozen"] is True and data_of(frozen)["frozenReason"] == "客户投诉"
    assert (await snapshot(session, customer.id))["row"]["is_frozen"] is True
    thawed = await update(client, headers, customer.id, isFrozen=False, frozenReason="已处理")
    assert data_of(thawed)["isFrozen"] is False and data_of(thawed)["frozenReason"] is None
    # The row keeps no reason once unfrozen; the timeline keeps both, with who and why.
    detail = data_of(await client.get(f"/api/customers/{customer.id}", headers=headers))
    freezes = [event for event in detail["timeline"] if event["type"] == "freeze"]
    by = team.member(role).id
    assert [(e["frozen"], e["reason"], e["userId"]) for e in freezes] == [
        (False, "已处理", by),
        (True, "客户投诉", by),
    ]


@pytest.mark.parametrize("frozen", [True, False])
async def test_an_advisor_cannot_freeze_or_unfreeze_its_own_customer(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, frozen: bool
) -> None:
    customer = await add_customer(session, team.advisor, is_frozen=not frozen)
    before = await snapshot(session, customer.id)
    response = await update(
        client, team.headers("advisor"), customer.id, isFrozen=frozen, remarks="顺便改备注"
    )
    assert_error(response, 403, "FORBIDDEN")
    assert await snapshot(session, customer.id) == before


# -- delete -------------------------------------------------------------------------------------


async def test_delete_takes_the_follow_ups_and_history_along(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor)
    headers = team.headers("admin")
    await client.post(
        f"/api/customers/{customer.id}/follow-ups",
        json={"method": "微信", "content": "加了微信"},
        headers=headers,
    )
    await client.patch(
        f"/api/customers/{customer.id}/assign", json={"assignedTo": team.other.id}, headers=headers
    )
    session.add(
        CustomerAction(
            openid="o-c",
            advisor_id=team.advisor.id,
            action_type="view_resume",
            action_data={},
            customer_record_id=customer.id,
        )
    )
    await session.commit()
    assert (
        data_of(
            await client.delete(f"/api/customers/{customer.id}", headers=headers), "删除客户成功"
        )
        is None
    )
    after = await snapshot(session, customer.id)
    assert after["row"] is None and after["follow_ups"] == 0 and after["history"] == 0
    action = await session.scalar(select(CustomerAction.customer_record_id))
    assert action is None  # the action itself stays, unlinked
    assert_error(
        await client.get(f"/api/customers/{customer.id}", headers=headers), 404, "NOT_FOUND"
    )
    assert_error(
        await client.delete(f"/api/customers/{customer.id}", headers=headers), 404, "NOT_FOUND"
    )


# -- follow-ups and the timeline ------------------------------------------------------------


async def add_follow_up(
    client: httpx.AsyncClient, headers: dict[str, str], customer_id: str, **fields: Any
) -> httpx.Response:
    body = {"method": "电话", "content": "电话沟通"} | fields
    return await client.post(f"/api/customers/{customer_id}/follow-ups", json=body, headers=headers)


@pytest.mark.parametrize("role", ["admin", "manager", "advisor"])
async def test_a_follow_up_is_recorded_and_becomes_the_last_one(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, role: str
) -> None:
    customer = await add_customer(session, team.advisor)
    headers = team.headers(role)
    first = data_of(
        await add_follow_up(
            client,
            headers,
            customer.id,
            method="面谈",
            content="上门面谈",
            nextFollowUpAt="2030-01-02T10:00:00+08:00",
        ),
        "添加跟进记录成功",
    )
    assert first["customerId"] == customer.id and first["userId"] == team.member(role).id
    assert (first["method"], first["content"]) == ("面谈", "上门面谈")
    assert moment(first["nextFollowUpAt"]) == datetime(2030, 1, 2, 2, tzinfo=UTC)
    detail = data_of(await client.get(f"/api/customers/{customer.id}", headers=headers))
    last = moment(detail["lastFollowUpTime"])
    assert abs(last - moment(first["createdAt"])) < timedelta(seconds=5)
    second = data_of(await add_follow_up(client, headers, customer.id))
    assert second["nextFollowUpAt"] is None
    detail = data_of(await client.get(f"/api/customers/{customer.id}", headers=headers))
    assert moment(detail["lastFollowUpTime"]) >= last
    listed = data_of(
        await client.get(f"/api/customers/{customer.id}/follow-ups", headers=headers),
        "获取跟进记录成功",
    )
    assert [f["_id"] for f in listed["items"]] == [second["_id"], first["_id"]]
    assert (listed["total"], listed["totalPages"]) == (2, 1)
    paged = data_of(
        await client.get(
            f"/api/customers/{customer.id}/follow-ups",
            params={"page": 2, "limit": 1},
            headers=headers,
        )
    )
    assert [f["_id"] for f in paged["items"]] == [first["_id"]] and paged["totalPages"] == 2


async def test_a_follow_up_date_alone_means_midnight_in_china(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor)
    response = await add_follow_up(
        client, team.headers("advisor"), customer.id, nextFollowUpAt="2030-01-03"
    )
    assert moment(data_of(response)["nextFollowUpAt"]) == datetime(2030, 1, 2, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"method": "飞鸽"}, "method"),
        ({"method": None}, "method"),
        ({"content": ""}, "content"),
        ({"content": "话" * 2001}, "content"),
        ({"nextFollowUpAt": "2030-01-02T10:00:00"}, "nextFollowUpAt"),
        ({"nextFollowUpAt": "明天"}, "nextFollowUpAt"),
        ({"userId": "0123456789abcdef01234567"}, "userId"),
    ],
)
async def test_a_bad_follow_up_is_a_400_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    fields: dict[str, Any],
    field: str,
) -> None:
    customer = await add_customer(session, team.advisor)
    before = await snapshot(session, customer.id)
    response = await add_follow_up(client, team.headers("advisor"), customer.id, **fields)
    details = assert_error(response, 400, "VALIDATION_ERROR")["error"]["details"]
    # A union's errors name its members too (nextFollowUpAt.datetime, nextFollowUpAt.date).
    assert details and all(d["field"].split(".")[0] == field for d in details)
    assert await snapshot(session, customer.id) == before


async def test_the_timeline_shows_actions_follow_ups_and_assignments_newest_first(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor)
    session.add(
        CustomerAction(
            openid="o-customer",
            advisor_id=team.advisor.id,
            action_type="contact_advisor",
            action_data={"from": "resume"},
            customer_record_id=customer.id,
            created_at=utcnow() - timedelta(hours=1),
        )
    )
    await session.commit()
    manager = team.headers("manager")
    await add_follow_up(client, manager, customer.id, content="第一次")
    assigned = await client.patch(
        f"/api/customers/{customer.id}/assign",
        json={"assignedTo": team.other.id, "assignmentReason": "顾问休假"},
        headers=manager,
    )
    data_of(assigned)
    await add_follow_up(client, manager, customer.id, method="微信", content="第二次")
    detail = data_of(
        await client.get(f"/api/customers/{customer.id}", headers=manager), "获取客户详情成功"
    )
    timeline = detail["timeline"]
    assert [event["type"] for event in timeline] == ["followUp", "assignment", "followUp", "action"]
    times = [moment(event["time"]) for event in timeline]
    assert times == sorted(times, reverse=True)
    assert timeline[0]["content"] == "第二次" and timeline[0]["method"] == "微信"
    assert timeline[0]["userId"] == team.manager.id
    assignment = timeline[1]
    assert (assignment["from"], assignment["to"], assignment["by"]) == (
        team.advisor.id,
        team.other.id,
        team.manager.id,
    )
    assert (assignment["reason"], assignment["channel"]) == ("顾问休假", "console")
    assert timeline[3]["actionType"] == "contact_advisor"
    assert timeline[3]["actionData"] == {"from": "resume"}
    assert "o-customer" not in assigned.text + str(detail)  # the customer's openid is not shown
    # The new owner sees it all; the old one no longer sees the customer.
    mine = await client.get(f"/api/customers/{customer.id}", headers=team.headers("other"))
    assert len(data_of(mine)["timeline"]) == 4
    gone = await client.get(f"/api/customers/{customer.id}", headers=team.headers("advisor"))
    assert_error(gone, 404, "NOT_FOUND")


async def test_the_detail_shows_the_customer(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(
        session, team.advisor, name="陈先生", lead_source="官网", service_category="家教"
    )
    data = data_of(
        await client.get(f"/api/customers/{customer.id}", headers=team.headers("advisor"))
    )
    assert data["_id"] == customer.id and data["customerId"] == customer.customer_no
    assert (data["name"], data["phone"]) == ("陈先生", customer.phone)
    assert (data["leadSource"], data["serviceCategory"]) == ("官网", "家教")
    assert data["assignedTo"] == team.advisor.id and data["inPublicPool"] is False
    assert data["timeline"] == [] and data["lastFollowUpTime"] is None
