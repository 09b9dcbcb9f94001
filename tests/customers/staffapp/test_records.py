"""Create (§4.4), the detail (§4.5) and changes (§4.6) for each role: required fields and
their messages, the refusals the mini program branches on, the old field names, the need
card, who may give a customer to whom, and what each role is shown."""

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
from tests.factories import add_customer, add_user, new_phone
from wxcrm.core.models import utcnow
from wxcrm.customers.models import AssignmentHistory, Customer, FollowUp
from wxcrm.notifications.models import Notification
from wxcrm.users.models import Role

CREATED = "客户创建成功"
UPDATED = "客户信息更新成功"
TOP_LEVEL_FORBIDDEN = "只有管理员、运营或派单老师可以手动设置线索等级为O类"


def form(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "陈女士",
        "phone": new_phone(),
        "leadSource": "美团",
        "contractStatus": "匹配中",
        "leadLevel": "A类",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"{BASE}/create", json=body, headers=headers)


async def stored(session: AsyncSession, customer_id: str) -> Customer:
    customer = await session.get(Customer, customer_id, populate_existing=True)
    assert customer is not None
    return customer


# -- create -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "manager", "advisor"])
async def test_a_customer_is_created_as_its_creators(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, role: str
) -> None:
    me = team.member(role)
    body = form(
        phone="+86 137-0000-0003",
        serviceCategory="月嫂",
        expectedDeliveryDate="2027-03-01",
        salaryBudget="12000",
        address="杭州市西湖区",
        area="西湖",
        idCardNumber="330100199001011234",
        restSchedule="双休",
        educationRequirement="高中",
        dealAmount=8800.5,
        remarks="第一胎",
    )
    data = ok(await create(client, team.headers(role), body), CREATED, status=201)
    customer = await stored(session, data["id"])
    assert data["customerId"] == customer.customer_no and data["action"] == "CREATED"
    assert data["createdAt"] and data["customer"]["_id"] == customer.id
    shown = data["customer"]
    assert shown["phone"] == "13700000003"  # normalised, and the creator's: unmasked
    assert shown["assignedTo"] == me.id and shown["assignedBy"] == me.id
    assert shown["assignedToUser"] == {"name": me.name, "username": me.username}
    assert shown["assignmentReason"] == "创建默认分配给创建人"
    assert shown["followUpStatus"] == "新客未跟进"
    assert (shown["salaryBudget"], shown["expectedDeliveryDate"]) == (12000, "2027-03-01")
    assert (shown["area"], shown["restSchedule"], shown["dealAmount"]) == ("西湖", "双休", 8800.5)
    assert (customer.owner_id, customer.created_by_id) == (me.id, me.id)
    assert customer.remark == "第一胎" and customer.id_card_number == "330100199001011234"
    # Made, not assigned: no history row, no message.
    assert await count(session, AssignmentHistory) == 0
    assert await count(session, Notification) == 0


async def test_the_old_field_names_and_the_need_card_are_understood(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    body = form(
        notes="客户很急",
        serviceType="住家保姆",
        needSalary="7000-7500",
        needFamilyMembers="三口人",
        needHouseArea="120平",
        needRestTime="单休",
        needOnboardingTime="2027年1月5日",
        needServiceAddress="滨江区",
        needWorkContent="做饭带娃",
    )
    data = ok(await create(client, team.headers("advisor"), body), CREATED, status=201)
    shown = data["customer"]
    assert (shown["remarks"], shown["serviceCategory"]) == ("客户很急", "住家保姆")
    assert (shown["salaryBudget"], shown["familySize"], shown["homeArea"]) == (7000, 3, 120)
    assert (shown["restSchedule"], shown["expectedStartDate"]) == ("单休", "2027-01-05")
    assert shown["address"] == "滨江区"
    assert (shown["needSalary"], shown["needWorkContent"]) == ("7000-7500", "做饭带娃")
    # The field itself wins over its old name.
    both = form(notes="旧", remarks="新", serviceType="保洁", serviceCategory="月嫂")
    shown = ok(await create(client, team.headers("advisor"), both), CREATED, 201)["customer"]
    assert (shown["remarks"], shown["serviceCategory"]) == ("新", "月嫂")


@pytest.mark.parametrize("role", ["admin", "advisor"])
async def test_a_customer_needs_a_phone_or_a_wechat_id(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, role: str
) -> None:
    for body in (form(phone=None), form(phone="", wechatId="  ")):
        response = await create(client, team.headers(role), body)
        refused(response, "请填写手机号或微信号", "MISSING_CONTACT", status=201)
    only_wechat = form(phone=None, wechatId="chen-wx")
    data = ok(await create(client, team.headers(role), only_wechat), CREATED, 201)
    assert (data["customer"]["phone"], data["customer"]["wechatId"]) == (None, "chen-wx")
    assert await count(session, Customer) == 1


async def test_a_known_phone_or_wechat_id_is_refused_precisely(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    # Another advisor's, and one of the pool: a phone is one customer's wherever it is.
    await add_customer(session, team.other, phone="13800138000", wechat_id="taken-wx")
    await add_customer(session, None, phone="13800138001")
    headers = team.headers("advisor")
    for phone in ("13800138000", "138 0013 8001"):
        response = await create(client, headers, form(phone=phone))
        refused(response, "该手机号已存在客户记录", "DUPLICATE_PHONE", status=201)
    response = await create(client, headers, form(phone=None, wechatId="taken-wx"))
    refused(response, "该微信号已存在客户记录", "DUPLICATE_WECHAT", status=201)
    assert await count(session, Customer) == 2


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": None}, "name", "客户姓名不能为空"),
        ({"name": "  "}, "name", "客户姓名不能为空"),
        ({"leadSource": None}, "leadSource", "线索来源不能为空"),
        ({"contractStatus": None}, "contractStatus", "签约状态不能为空"),
        ({"leadLevel": None}, "leadLevel", "线索等级不能为空"),
        ({"phone": "12345"}, "phone", "请输入有效的中国手机号码"),
        ({"salaryBudget": "很多"}, "salaryBudget", "薪资预算必须是数字"),
        ({"salaryBudget": -1}, "salaryBudget", "薪资预算不能为负数"),
        ({"salaryBudget": 60000}, "salaryBudget", "薪资预算不能高于50000元"),
        ({"expectedStartDate": "明天"}, "expectedStartDate", "期望上户日期格式不正确"),
        (
            {"restSchedule": "随便"},
            "restSchedule",
            "休息方式必须是：单休、双休、无休、调休、待定之一",
        ),
        ({"educationRequirement": "博士"}, "educationRequirement", "学历要求必须在指定选项中选择"),
        ({"assignedTo": "someone"}, "assignedTo", "负责人ID格式不正确"),
        ({"createdBy": "x"}, "createdBy", "不允许的字段"),
        ({"leadSource": "路边"}, "leadSource", None),
        ({"leadLevel": "Z类"}, "leadLevel", None),
        ({"serviceType": "司机"}, "serviceCategory", None),
    ],
)
async def test_a_bad_form_is_a_400_naming_the_field(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    changes: dict[str, Any],
    field: str,
    message: str | None,
) -> None:
    body = form() | changes
    body = {key: value for key, value in body.items() if value is not None}
    response = await create(client, team.headers("advisor"), body)
    [detail] = assert_error(response, 400, "VALIDATION_ERROR")["error"]["details"]
    assert detail["field"] == field
    assert detail["message"] == message if message else "必须是" in detail["message"]
    assert await count(session, Customer) == 0


async def test_only_admins_and_managers_grade_a_customer_o(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    response = await create(client, team.headers("advisor"), form(leadLevel="O类"))
    refused(response, TOP_LEVEL_FORBIDDEN, "FORBIDDEN", status=201)
    for role in ("admin", "manager"):
        data = ok(await create(client, team.headers(role), form(leadLevel="O类")), CREATED, 201)
        assert data["customer"]["leadLevel"] == "O类"
        assert data["customer"]["followUpStatus"] is None  # O类 carries no tag
    assert await count(session, Customer) == 2


async def test_an_advisor_may_give_a_new_customer_only_to_itself(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    headers = team.headers("advisor")
    response = await create(client, headers, form(assignedTo=team.other.id))
    refused(response, "无权限分配客户", "FORBIDDEN", status=201)
    assert await count(session, Customer) == 0
    body = form(assignedTo=team.advisor.id, assignmentReason="自己的老客户")
    data = ok(await create(client, headers, body), CREATED, 201)
    assert data["customer"]["assignedTo"] == team.advisor.id
    assert data["customer"]["assignmentReason"] == "自己的老客户"
    itself = ok(await create(client, headers, form(assignedTo=team.advisor.id)), CREATED, 201)
    assert itself["customer"]["assignmentReason"] == "创建时指定负责人"
    assert await count(session, AssignmentHistory) == 0


@pytest.mark.parametrize("role", ["admin", "manager"])
@pytest.mark.parametrize("reason", [None, "熟人介绍"])
async def test_a_manager_gives_a_new_customer_to_an_advisor_who_is_told(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, role: str, reason: str | None
) -> None:
    by = team.member(role)
    body = form(assignedTo=team.other.id, assignmentReason=reason)
    data = ok(await create(client, team.headers(role), body), CREATED, 201)
    shown = data["customer"]
    assert (shown["assignedTo"], shown["assignedBy"]) == (team.other.id, by.id)
    assert shown["assignmentReason"] == (reason or "创建时指定负责人")
    assert shown["createdBy"] == by.id and shown["inPublicPool"] is False
    [row] = (await session.scalars(select(AssignmentHistory))).all()
    assert (row.from_user_id, row.to_user_id, row.by_user_id, row.channel) == (
        None,
        team.other.id,
        by.id,
        "miniprogram",
    )
    assert row.reason == (reason or "创建时指定负责人")
    [note] = (await session.scalars(select(Notification))).all()
    assert (note.advisor_id, note.event) == (team.other.id, "customer_assigned")
    assert note.payload["page"] == f"pages/customer/detail?id={data['id']}"


async def test_a_manager_gives_new_customers_only_to_active_advisors(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    gone = await add_user(session, Role.advisor, active=False)
    headers = team.headers("manager")
    for to, message in (
        ("0123456789abcdef01234567", "指定的负责人不存在"),
        (gone.id, "指定的负责人未激活"),
        (team.admin.id, "指定的负责人角色不允许被分配"),
    ):
        response = await create(client, headers, form(assignedTo=to))
        refused(response, message, message, status=201)
    assert await count(session, Customer) == 0
    # Its own: as without assignedTo.
    data = ok(await create(client, headers, form(assignedTo=team.manager.id)), CREATED, 201)
    assert data["customer"]["assignedTo"] == team.manager.id


# -- the detail -------------------------------------------------------------------------------


async def test_the_detail_names_its_people_and_lists_follow_ups_newest_first(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(
        session,
        team.advisor,
        name="孙女士",
        created_by_id=team.admin.id,
        assigned_by_id=team.manager.id,
        last_updated_by_id=team.advisor.id,
        need_salary="8000",
    )
    now = utcnow()
    session.add_all(
        [
            FollowUp(
                customer_id=customer.id,
                user_id=team.manager.id,
                method="微信",
                content="经理问候",
                created_at=now - timedelta(hours=2),
            ),
            FollowUp(
                customer_id=customer.id,
                user_id=team.advisor.id,
                method="面谈",
                content="上门面谈",
                next_follow_up_at=now + timedelta(days=1),
                created_at=now - timedelta(hours=1),
            ),
        ]
    )
    await session.commit()
    for role in ("admin", "manager", "advisor"):
        data = ok(
            await client.get(f"{BASE}/{customer.id}", headers=team.headers(role)),
            "客户详情获取成功",
        )
        assert data["_id"] == customer.id and data["assignedTo"] == team.advisor.id  # a bare id
        assert (data["createdByName"], data["assignedToName"], data["assignedByName"]) == (
            "李管理",
            "张顾问",
            "王经理",
        )
        assert data["createdByUser"] == {"name": "李管理", "username": team.admin.username}
        assert data["assignedByUser"]["name"] == "王经理"
        assert data["lastUpdatedByUser"]["name"] == "张顾问"
        assert data["assignedToUser"]["name"] == "张顾问"
        assert data["followUpStatus"] == "已跟进"
        assert data["needSalary"] == "8000"  # the whole record, need cards included
        assert [f["content"] for f in data["followUps"]] == ["上门面谈", "经理问候"]
        first = data["followUps"][0]
        assert first["type"] == "visit" and first["customerId"] == customer.id
        assert first["createdBy"] == {
            "_id": team.advisor.id,
            "name": "张顾问",
            "username": team.advisor.username,
        }
        assert first["nextFollowUpDate"] and first["updatedAt"] == first["createdAt"]


async def test_a_customer_of_nobody_known_reads_unknown_and_unassigned(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, None)
    data = ok(
        await client.get(f"{BASE}/{customer.id}", headers=team.headers("admin")), "客户详情获取成功"
    )
    assert (data["createdByName"], data["assignedToName"], data["assignedByName"]) == (
        "未知",
        "未分配",
        "未知",
    )
    assert data["createdByUser"] is None and data["assignedToUser"] is None
    assert data["followUps"] == [] and data["inPublicPool"] is True


async def test_an_advisor_is_refused_anothers_customer(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    anothers = await add_customer(session, team.other)
    pooled = await add_customer(session, None)
    for customer in (anothers, pooled):
        response = await client.get(f"{BASE}/{customer.id}", headers=team.headers("advisor"))
        refused(response, "无权限访问此客户信息", "FORBIDDEN")
        response = await client.patch(
            f"{BASE}/{customer.id}", json={"remarks": "改一下"}, headers=team.headers("advisor")
        )
        refused(response, "无权限修改此客户信息", "FORBIDDEN")
        assert (await stored(session, customer.id)).remark is None


# -- changes ----------------------------------------------------------------------------------


async def patch(
    client: httpx.AsyncClient, headers: dict[str, str], customer_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"{BASE}/{customer_id}", json=body, headers=headers)


@pytest.mark.parametrize("role", ["admin", "manager", "advisor"])
async def test_a_change_is_written_and_answered_with_the_record(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, role: str
) -> None:
    customer = await add_customer(session, team.advisor, salary_budget=9000, home_area=90)
    body = {
        "name": "孙女士",
        "contractStatus": "已签约",
        "salaryBudget": "",  # the mini program's "not filled in": kept
        "homeArea": None,  # kept too
        "familySize": 4,
        "notes": "周末联系",  # the old names work on changes too
        "serviceType": "保洁",
    }
    data = ok(await patch(client, team.headers(role), customer.id, body), UPDATED)
    assert (data["name"], data["contractStatus"], data["familySize"]) == ("孙女士", "已签约", 4)
    assert (data["salaryBudget"], data["homeArea"]) == (9000, 90)
    assert (data["remarks"], data["serviceCategory"]) == ("周末联系", "保洁")
    assert data["followUpStatus"] is None  # signed: no tag
    assert data["lastUpdatedBy"] == team.member(role).id and data["signedAt"]
    row = await stored(session, customer.id)
    assert (row.remark, row.service_category, row.salary_budget) == ("周末联系", "保洁", 9000)


async def test_a_change_fills_structured_fields_from_the_need_card_only_where_empty(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, salary_budget=9000)
    body = {"needSalary": "7000", "needHouseArea": "80平米", "needOrderType": "月嫂"}
    data = ok(await patch(client, team.headers("advisor"), customer.id, body), UPDATED)
    assert (data["salaryBudget"], data["homeArea"], data["serviceCategory"]) == (9000, 80, "月嫂")
    assert data["needSalary"] == "7000"


async def test_o_grade_is_set_by_managers_and_kept_by_advisors(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    mine = await add_customer(session, team.advisor, lead_level="A类")
    response = await patch(client, team.headers("advisor"), mine.id, {"leadLevel": "O类"})
    refused(response, TOP_LEVEL_FORBIDDEN, "FORBIDDEN")
    assert (await stored(session, mine.id)).lead_level == "A类"
    data = ok(await patch(client, team.headers("manager"), mine.id, {"leadLevel": "O类"}), UPDATED)
    assert data["leadLevel"] == "O类"
    # The advisor's form sends the grade back as it is: the other changes go through.
    body = {"leadLevel": "O类", "remarks": "已面谈"}
    data = ok(await patch(client, team.headers("advisor"), mine.id, body), UPDATED)
    assert (data["leadLevel"], data["remarks"]) == ("O类", "已面谈")


async def test_an_advisor_cannot_reassign_by_a_change(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    mine = await add_customer(session, team.advisor)
    body = {"assignedTo": team.other.id, "assignmentReason": "换人", "remarks": "x"}
    refused(
        await patch(client, team.headers("advisor"), mine.id, body), "无权限分配客户", "FORBIDDEN"
    )
    row = await stored(session, mine.id)
    assert (row.owner_id, row.remark) == (team.advisor.id, None)  # nothing changed
    assert await count(session, AssignmentHistory) == 0
    # Naming itself, the owner it already is, is no reassignment.
    same = {"assignedTo": team.advisor.id, "remarks": "x"}
    assert (
        ok(await patch(client, team.headers("advisor"), mine.id, same), UPDATED)["remarks"] == "x"
    )


@pytest.mark.parametrize("role", ["admin", "manager"])
async def test_a_managers_new_owner_is_an_assignment(
    client: httpx.AsyncClient, session: AsyncSession, role: str
) -> None:
    team = await make_team(session, advisor_openids=True)
    customer = await add_customer(session, team.advisor)
    body = {"assignedTo": team.other.id, "assignmentReason": "顾问休假", "remarks": "交接"}
    data = ok(await patch(client, team.headers(role), customer.id, body), UPDATED)
    assert (data["assignedTo"], data["assignedBy"]) == (team.other.id, team.member(role).id)
    assert (data["assignmentReason"], data["remarks"]) == ("顾问休假", "交接")
    assert data["assignedToUser"]["name"] == "赵顾问"
    [row] = (await session.scalars(select(AssignmentHistory))).all()
    assert (row.from_user_id, row.to_user_id, row.reason) == (
        team.advisor.id,
        team.other.id,
        "顾问休假",
    )
    [note] = (await session.scalars(select(Notification))).all()
    assert note.advisor_id == team.other.id
    assert note.payload["page"] == f"pages/customer/detail?id={customer.id}"
    inactive = await add_user(session, Role.advisor, active=False)
    response = await patch(client, team.headers(role), customer.id, {"assignedTo": inactive.id})
    refused(response, "指定的负责人未激活", "指定的负责人未激活")


async def test_a_changed_phone_or_wechat_id_another_has_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_customer(session, team.other, phone="13800138000", wechat_id="taken-wx")
    mine = await add_customer(session, team.advisor, phone="13900139000")
    headers = team.headers("advisor")
    for body, error in (
        ({"phone": "13800138000"}, "该手机号已被其他客户使用"),
        ({"wechatId": "taken-wx"}, "该微信号已被其他客户使用"),
    ):
        refused(
            await patch(client, headers, mine.id, body | {"name": "改名"}),
            "客户信息更新失败",
            error,
        )
    response = await patch(client, headers, mine.id, {"phone": ""})
    refused(response, "请填写手机号或微信号", "MISSING_CONTACT")
    row = await stored(session, mine.id)
    assert (row.phone, row.name) == ("13900139000", mine.name)
    # Its own number again is no conflict.
    assert ok(await patch(client, headers, mine.id, {"phone": "139 0013 9000"}), UPDATED)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": ""}, "name", "客户姓名不能为空"),
        ({"name": None}, "name", "客户姓名不能为空"),
        ({"leadSource": None}, "leadSource", "线索来源不能为空"),
        ({"phone": "110"}, "phone", "请输入有效的中国手机号码"),
        ({"familySize": 21}, "familySize", "家庭人口不能超过20人"),
        ({"contractStatus": "签了"}, "contractStatus", None),
        ({"isFrozen": True}, "isFrozen", "不允许的字段"),
    ],
)
async def test_a_bad_change_is_a_400_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    body: dict[str, Any],
    field: str,
    message: str | None,
) -> None:
    mine = await add_customer(session, team.advisor, family_size=3)
    response = await patch(client, team.headers("advisor"), mine.id, body)
    [detail] = assert_error(response, 400, "VALIDATION_ERROR")["error"]["details"]
    assert detail["field"] == field
    assert detail["message"] == message if message else "必须是" in detail["message"]
    row = await stored(session, mine.id)
    assert (row.name, row.family_size, row.phone) == (mine.name, 3, mine.phone)
