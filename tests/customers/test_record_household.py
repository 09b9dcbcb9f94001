"""The 家政 record in the console API: every field accepted on create and update and shown
in the list and the detail, each field's checks with the original's messages, a phone or a
WeChat id (both unique), the `notes` / `serviceType` aliases, the older need card filling
the structured fields, freezing with a reason, the O类 grade, who followed up last."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.customers.conftest import Team, count
from tests.customers.test_customers import data_of, snapshot
from tests.factories import add_customer, new_phone
from wxcrm.core.types import DATE_RANGE_MESSAGE
from wxcrm.customers.models import Customer
from wxcrm.customers.records import service as records_service

# A customer with every field a form can fill in, as sent and as shown.
FULL_RECORD: dict[str, Any] = {
    "name": "王女士",
    "phone": "13800138001",
    "wechatId": "wx-wang",
    "idCardNumber": "33010619900101123X",
    "leadSource": "小红书",
    "serviceCategory": "月嫂",
    "contractStatus": "匹配中",
    "leadLevel": "A类",
    "address": "杭州市西湖区文三路 100 号",
    "area": "西湖区",
    "remarks": "预产期前一个月上户",
    "salaryBudget": 12000,
    "expectedStartDate": "2026-12-01",
    "expectedDeliveryDate": "2026-12-20",
    "homeArea": 120,
    "familySize": 4,
    "restSchedule": "单休",
    "serviceDays": 26,
    "ageRequirement": "45岁以下",
    "genderRequirement": "女",
    "originRequirement": "浙江",
    "educationRequirement": "初中",
    "dealAmount": 16800.5,
    "needOrderType": "月嫂",
    "needWorkingHours": "全天",
    "needSalary": "12000-13000",
    "needRestTime": "单休",
    "needFamilyMembers": "三口之家",
    "needServiceAddress": "杭州市西湖区",
    "needHouseArea": "120平",
    "needWorkContent": "照顾产妇和新生儿",
    "needRemarks": "家里有猫",
    "needServicePeriod": "26天",
    "needOnboardingTime": "2026年12月1日",
}

# (field, value sent, message): the checks of staff-api §6.1.
BAD_VALUES: list[tuple[str, Any, str]] = [
    ("salaryBudget", "很多", "薪资预算必须是数字"),
    ("salaryBudget", -1, "薪资预算不能为负数"),
    ("salaryBudget", 50_001, "薪资预算不能高于50000元"),
    ("salaryBudget", 8000.5, "薪资预算必须是整数"),
    ("homeArea", "大", "家庭面积必须是数字"),
    ("homeArea", -5, "家庭面积不能为负数"),
    ("homeArea", 1001, "家庭面积不能超过1000平方米"),
    ("familySize", "三", "家庭人口必须是数字"),
    ("familySize", 21, "家庭人口不能超过20人"),
    ("serviceDays", True, "服务天数必须是数字"),
    ("serviceDays", 3651, "服务天数不能超过3650天"),
    ("dealAmount", "一万", "成交金额必须是数字"),
    ("dealAmount", -0.01, "成交金额不能为负数"),
    ("dealAmount", 10_000_000.01, "成交金额不能超过1000万元"),
    ("expectedStartDate", "下个月", "期望上户日期格式不正确"),
    ("expectedStartDate", "2026-02-30", "期望上户日期格式不正确"),
    ("expectedStartDate", 20261201, "期望上户日期格式不正确"),
    ("expectedStartDate", "0001-01-01", DATE_RANGE_MESSAGE),
    ("expectedDeliveryDate", "2026/13/01", "预产期格式不正确"),
    ("expectedDeliveryDate", "9999-12-31", DATE_RANGE_MESSAGE),
    ("restSchedule", "周休", "休息方式必须是：单休、双休、无休、调休、待定之一"),
    ("educationRequirement", "博士", "学历要求必须在指定选项中选择"),
    ("idCardNumber", "1" * 33, "长度不能超过32个字符"),
    ("area", "区" * 65, "长度不能超过64个字符"),
    ("ageRequirement", "岁" * 65, "长度不能超过64个字符"),
    ("genderRequirement", "女" * 17, "长度不能超过16个字符"),
    ("originRequirement", "省" * 65, "长度不能超过64个字符"),
    ("needOrderType", "单" * 65, "长度不能超过64个字符"),
    ("needSalary", "元" * 256, "长度不能超过255个字符"),
    ("needWorkContent", "活" * 2001, "长度不能超过2000个字符"),
    ("needRemarks", "备" * 2001, "长度不能超过2000个字符"),
    ("frozenReason", "因" * 201, "长度不能超过200个字符"),
    ("notes", "备" * 2001, "长度不能超过2000个字符"),
    ("serviceType", "不存在的类别", "serviceType 必须是"),
]


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> httpx.Response:
    body = {"name": "张三", "phone": "13800138000"} | fields
    return await client.post("/api/customers", json=body, headers=headers)


async def update(
    client: httpx.AsyncClient, headers: dict[str, str], customer_id: str, **fields: Any
) -> httpx.Response:
    return await client.patch(f"/api/customers/{customer_id}", json=fields, headers=headers)


def shown(data: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in fields}


# -- every field, in and out -------------------------------------------------------------------


async def test_create_takes_every_field_and_the_list_and_detail_show_them(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    headers = team.headers("advisor")
    created = data_of(await client.post("/api/customers", json=FULL_RECORD, headers=headers))
    assert shown(created, FULL_RECORD) == FULL_RECORD
    detail = data_of(await client.get(f"/api/customers/{created['_id']}", headers=headers))
    assert shown(detail, FULL_RECORD) == FULL_RECORD
    listed = data_of(await client.get("/api/customers", headers=headers))["items"]
    assert [shown(item, FULL_RECORD) for item in listed] == [FULL_RECORD]
    stored = await session.get(Customer, created["_id"])
    assert stored is not None
    assert (stored.salary_budget, stored.deal_amount, stored.remark) == (
        12000,
        16800.5,
        "预产期前一个月上户",
    )
    assert str(stored.expected_start_date) == "2026-12-01"
    assert stored.last_updated_by_id == team.advisor.id


async def test_update_changes_every_field_and_null_clears_them(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, name="旧名字")
    headers = team.headers("advisor")
    data = data_of(await update(client, headers, customer.id, **FULL_RECORD), "更新客户成功")
    assert shown(data, FULL_RECORD) == FULL_RECORD
    assert data["lastUpdatedBy"] == team.advisor.id
    household = [key for key in FULL_RECORD if key not in ("name", "leadSource", "contractStatus")]
    cleared = {key: None for key in household if key != "phone"}
    data = data_of(await update(client, headers, customer.id, **cleared))
    assert shown(data, cleared) == cleared
    assert data["phone"] == "13800138001" and data["name"] == "王女士"


async def test_numbers_and_dates_may_be_sent_as_text(client: httpx.AsyncClient, team: Team) -> None:
    data = data_of(
        await create(
            client,
            team.headers("advisor"),
            salaryBudget="8000",
            homeArea="95",
            familySize=" 3 ",
            serviceDays="26.0",
            dealAmount="9999.99",
            expectedStartDate="2026-12-01T00:00:00+08:00",
            # A JavaScript Date.toISOString() of midnight in Beijing: still 1 December there.
            expectedDeliveryDate="2026-11-30T16:00:00.000Z",
            restSchedule="",
        )
    )
    assert (data["salaryBudget"], data["homeArea"], data["familySize"]) == (8000, 95, 3)
    assert (data["serviceDays"], data["dealAmount"]) == (26, 9999.99)
    assert data["expectedStartDate"] == data["expectedDeliveryDate"] == "2026-12-01"
    assert data["restSchedule"] is None


@pytest.mark.parametrize(
    ("field", "value", "message"), [case for case in BAD_VALUES if case[0] != "frozenReason"]
)
async def test_each_check_on_create_is_a_400_with_its_message(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    field: str,
    value: Any,
    message: str,
) -> None:
    response = await create(client, team.headers("manager"), **{field: value})
    body = assert_error(response, 400, "VALIDATION_ERROR")
    [detail] = body["error"]["details"]
    assert detail["field"] == field
    assert detail["message"].startswith(message), detail
    assert message in body["message"]
    assert await count(session, Customer) == 0


@pytest.mark.parametrize(("field", "value", "message"), BAD_VALUES)
async def test_each_check_on_update_is_a_400_with_its_message_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    field: str,
    value: Any,
    message: str,
) -> None:
    customer = await add_customer(session, team.advisor)
    before = await snapshot(session, customer.id)
    response = await update(client, team.headers("manager"), customer.id, **{field: value})
    body = assert_error(response, 400, "VALIDATION_ERROR")
    [detail] = body["error"]["details"]
    assert detail["field"] == field and detail["message"].startswith(message), detail
    assert await snapshot(session, customer.id) == before


# -- a phone or a WeChat id, each unique -------------------------------------------------------


async def test_a_wechat_id_alone_makes_a_customer(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    for n, phone in enumerate((None, "", "   ")):
        wechat_id = f"wx-only-{n}"
        body = {"name": "微信客户", "wechatId": wechat_id} | (
            {} if phone is None else {"phone": phone}
        )
        data = data_of(
            await client.post("/api/customers", json=body, headers=team.headers("advisor"))
        )
        assert data["phone"] is None and data["wechatId"] == wechat_id
    assert await count(session, Customer, Customer.phone.is_(None)) == 3


@pytest.mark.parametrize(
    "contact",
    [{}, {"phone": ""}, {"phone": " ", "wechatId": " "}, {"phone": None, "wechatId": None}],
)
async def test_neither_phone_nor_wechat_id_is_a_400(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, contact: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/customers", json={"name": "张三"} | contact, headers=team.headers("advisor")
    )
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["message"] == "请填写手机号或微信号"
    assert body["error"]["details"] == [{"field": "phone", "message": "请填写手机号或微信号"}]
    assert await count(session, Customer) == 0


async def test_an_update_may_drop_one_contact_but_not_both(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, phone="13800138000", wechat_id="wx-a")
    headers = team.headers("advisor")
    data = data_of(await update(client, headers, customer.id, phone=None))
    assert (data["phone"], data["wechatId"]) == (None, "wx-a")
    before = await snapshot(session, customer.id)
    body = assert_error(
        await update(client, headers, customer.id, wechatId=""), 400, "VALIDATION_ERROR"
    )
    assert body["error"]["details"] == [{"field": "phone", "message": "请填写手机号或微信号"}]
    assert await snapshot(session, customer.id) == before
    # Both at once: the new phone is what remains.
    data = data_of(await update(client, headers, customer.id, wechatId=None, phone="13900139000"))
    assert (data["phone"], data["wechatId"]) == ("13900139000", None)


async def test_a_wechat_id_another_customer_has_is_a_409_naming_it(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    await add_customer(session, team.other, wechat_id="wx-taken")
    mine = await add_customer(session, team.advisor, wechat_id="wx-mine")
    headers = team.headers("advisor")
    expected = [{"field": "wechatId", "message": "该微信号已被其他客户使用"}]
    created = await create(client, headers, phone="13700137000", wechatId=" wx-taken ")
    body = assert_error(created, 409, "CONFLICT")
    assert body["message"] == "该微信号已被其他客户使用" and body["error"]["details"] == expected
    assert await count(session, Customer) == 2
    before = await snapshot(session, mine.id)
    body = assert_error(
        await update(client, headers, mine.id, wechatId="wx-taken"), 409, "CONFLICT"
    )
    assert body["error"]["details"] == expected
    assert await snapshot(session, mine.id) == before
    # Its own WeChat id is no conflict.
    assert (
        data_of(await update(client, headers, mine.id, wechatId="wx-mine"))["wechatId"] == "wx-mine"
    )


# -- the aliases -------------------------------------------------------------------------------


async def test_notes_and_service_type_stand_for_remarks_and_service_category(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    headers = team.headers("advisor")
    data = data_of(await create(client, headers, notes="老客户介绍", serviceType="保洁"))
    assert (data["remarks"], data["serviceCategory"]) == ("老客户介绍", "保洁")
    assert "notes" not in data and "serviceType" not in data
    # Both an alias and its field: the field wins.
    both = data_of(
        await create(
            client,
            headers,
            phone="13900139000",
            notes="别名",
            remarks="字段",
            serviceType="保洁",
            serviceCategory="月嫂",
        )
    )
    assert (both["remarks"], both["serviceCategory"]) == ("字段", "月嫂")
    # And on update.
    data = data_of(await update(client, headers, data["_id"], notes="改过", serviceType="小时工"))
    assert (data["remarks"], data["serviceCategory"]) == ("改过", "小时工")
    data = data_of(
        await update(
            client, headers, both["_id"], notes="别名", remarks="字段2", serviceType="保洁"
        )
    )
    assert (data["remarks"], data["serviceCategory"]) == ("字段2", "保洁")


# -- the older need card -----------------------------------------------------------------------


async def test_the_need_card_fills_the_empty_structured_fields_on_create(
    client: httpx.AsyncClient, team: Team
) -> None:
    card = {
        "needOrderType": "住家保姆",
        "needSalary": "7000-7500元",
        "needRestTime": "双休",
        "needOnboardingTime": "2026年12月1日",
        "needHouseArea": "约90平米",
        "needFamilyMembers": "三口之家",
        "needServiceAddress": "杭州市滨江区",
    }
    data = data_of(await create(client, team.headers("advisor"), **card))
    assert shown(data, card) == card  # the card itself is kept as typed
    assert (data["serviceCategory"], data["salaryBudget"], data["restSchedule"]) == (
        "住家保姆",
        7000,
        "双休",
    )
    assert (data["expectedStartDate"], data["homeArea"], data["familySize"]) == (
        "2026-12-01",
        90,
        3,
    )
    assert data["address"] == "杭州市滨江区"
    # A structured field sent alongside wins over the card.
    data = data_of(
        await create(
            client, team.headers("advisor"), phone="13900139000", salaryBudget=9000, **card
        )
    )
    assert data["salaryBudget"] == 9000 and data["homeArea"] == 90


async def test_the_need_card_on_update_fills_only_what_is_empty_in_the_record(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, salary_budget=9000, address="上海")
    data = data_of(
        await update(
            client,
            team.headers("advisor"),
            customer.id,
            needSalary="7000",
            needServiceAddress="杭州",
            needHouseArea="120平",
            needOrderType="不在列表里的类别",
        )
    )
    assert (data["salaryBudget"], data["address"]) == (9000, "上海")
    assert data["homeArea"] == 120 and data["serviceCategory"] is None
    assert data["needSalary"] == "7000" and data["needOrderType"] == "不在列表里的类别"


# -- freezing, the O类 grade, follow-ups --------------------------------------------------------


async def test_freezing_records_who_when_and_why(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor)
    headers = team.headers("manager")
    frozen = data_of(
        await update(client, headers, customer.id, isFrozen=True, frozenReason="客户出国")
    )
    assert (frozen["isFrozen"], frozen["frozenBy"], frozen["frozenReason"]) == (
        True,
        team.manager.id,
        "客户出国",
    )
    assert frozen["frozenAt"] is not None
    # The reason of a frozen customer may change; freezing again is no new freeze.
    again = data_of(await update(client, headers, customer.id, frozenReason="客户年后回国"))
    assert again["frozenReason"] == "客户年后回国" and again["frozenAt"] == frozen["frozenAt"]
    thawed = data_of(await update(client, headers, customer.id, isFrozen=False))
    assert (thawed["frozenAt"], thawed["frozenBy"], thawed["frozenReason"]) == (None, None, None)
    # No reason on a customer that is not frozen; a freeze without one has none.
    loose = data_of(await update(client, headers, customer.id, frozenReason="随手写的"))
    assert loose["frozenReason"] is None and loose["isFrozen"] is False
    bare = data_of(await update(client, headers, customer.id, isFrozen=True))
    assert bare["frozenReason"] is None and bare["frozenBy"] == team.manager.id


async def test_an_advisor_cannot_give_a_freezing_reason(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, is_frozen=True)
    before = await snapshot(session, customer.id)
    response = await update(client, team.headers("advisor"), customer.id, frozenReason="我来写")
    assert_error(response, 403, "FORBIDDEN")
    assert await snapshot(session, customer.id) == before


async def test_only_managers_grade_a_customer_o(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, lead_level="A类")
    before = await snapshot(session, customer.id)
    response = await update(client, team.headers("advisor"), customer.id, leadLevel="O类")
    body = assert_error(response, 403, "FORBIDDEN")
    assert body["message"] == "只有管理员和经理可以手动设置线索等级为O类"
    assert await snapshot(session, customer.id) == before
    graded = await update(client, team.headers("manager"), customer.id, leadLevel="O类")
    assert data_of(graded)["leadLevel"] == "O类"
    # Its advisor still edits it, the form sending the grade back as it is.
    kept = await update(
        client, team.headers("advisor"), customer.id, leadLevel="O类", remarks="已回访"
    )
    assert (data_of(kept)["leadLevel"], data_of(kept)["remarks"]) == ("O类", "已回访")
    # Nor may an advisor make a new customer O类 (it would be the same grade by hand).
    made = await client.post(
        "/api/customers",
        json={"name": "周女士", "phone": new_phone(), "leadLevel": "O类"},
        headers=team.headers("advisor"),
    )
    assert assert_error(made, 403, "FORBIDDEN")["message"] == body["message"]


async def test_a_follow_up_records_who_followed_up_last(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor)
    for role in ("advisor", "manager"):
        response = await client.post(
            f"/api/customers/{customer.id}/follow-ups",
            json={"method": "电话", "content": "回访", "nextFollowUpAt": "2030-01-03"},
            headers=team.headers(role),
        )
        data_of(response)
        detail = data_of(
            await client.get(f"/api/customers/{customer.id}", headers=team.headers(role))
        )
        assert detail["lastFollowUpBy"] == team.member(role).id
    row = (await snapshot(session, customer.id))["row"]
    assert row["last_follow_up_by_id"] == team.manager.id


@pytest.mark.parametrize("field", ["phone", "wechatId"])
async def test_a_contact_taken_by_a_concurrent_create_is_a_409_naming_it(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
) -> None:
    await add_customer(session, team.other, phone="13800138000", wechat_id="wx-race")
    check = records_service._refuse_taken_contact
    calls: list[object] = []

    async def misses_the_first_time(*args: Any) -> None:
        # The other create commits between this one's check and its INSERT.
        calls.append(args)
        if len(calls) > 1:
            await check(*args)

    monkeypatch.setattr(records_service, "_refuse_taken_contact", misses_the_first_time)
    body = {"phone": "13900139000", "wechatId": "wx-new"} | {
        field: {"phone": "13800138000", "wechatId": "wx-race"}[field]
    }
    response = await create(client, team.headers("advisor"), **body)
    message = {"phone": "该手机号已被其他客户使用", "wechatId": "该微信号已被其他客户使用"}[field]
    details = assert_error(response, 409, "CONFLICT")["error"]["details"]
    assert details == [{"field": field, "message": message}]
    assert await count(session, Customer) == 1
