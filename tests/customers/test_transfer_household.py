"""The 家政 columns in import and export: read under their Chinese headers, checked by the
forms' rules and reported per row, a WeChat id standing in for a phone (both unique),
Excel's own dates and numbers, and an export that imports back field for field."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.customers.test_record_household import FULL_RECORD
from tests.customers.test_transfer import (
    EXPORT_HEADERS,
    TEMPLATE_HEADERS,
    csv_bytes,
    csv_rows,
    upload,
    xlsx_bytes,
    xlsx_rows,
)
from tests.factories import make_user, token_for
from wxcrm.core.types import DATE_RANGE_MESSAGE
from wxcrm.customers.models import Customer
from wxcrm.users.models import Role, User

# Header -> a cell of every 家政 column, as staff type them.
HOUSEHOLD_CELLS = {
    "身份证号": "33010619900101123X",
    "地区": "西湖区",
    "薪资预算": "12000",
    "期望上户日期": "2026-12-01",
    "预产期": "2026-12-20",
    "家庭面积": "120",
    "家庭人口": "4",
    "休息方式": "单休",
    "服务天数": "26",
    "年龄要求": "45岁以下",
    "性别要求": "女",
    "籍贯要求": "浙江",
    "学历要求": "初中",
    "成交金额": "16800.5",
    "需求-订单类型": "月嫂",
    "需求-工作时间": "全天",
    "需求-薪资": "12000-13000",
    "需求-休息时间": "单休",
    "需求-家庭成员": "三口之家",
    "需求-服务地址": "杭州市西湖区",
    "需求-房屋面积": "120平",
    "需求-工作内容": "照顾产妇和新生儿",
    "需求-备注": "家里有猫",
    "需求-服务周期": "26天",
    "需求-上户时间": "2026年12月1日",
}
# What those cells become, by column.
HOUSEHOLD_STORED = {
    "id_card_number": "33010619900101123X",
    "area": "西湖区",
    "salary_budget": 12000,
    "expected_start_date": date(2026, 12, 1),
    "expected_delivery_date": date(2026, 12, 20),
    "home_area": 120,
    "family_size": 4,
    "rest_schedule": "单休",
    "service_days": 26,
    "age_requirement": "45岁以下",
    "gender_requirement": "女",
    "origin_requirement": "浙江",
    "education_requirement": "初中",
    "deal_amount": 16800.5,
    "need_order_type": "月嫂",
    "need_working_hours": "全天",
    "need_salary": "12000-13000",
    "need_rest_time": "单休",
    "need_family_members": "三口之家",
    "need_service_address": "杭州市西湖区",
    "need_house_area": "120平",
    "need_work_content": "照顾产妇和新生儿",
    "need_remarks": "家里有猫",
    "need_service_period": "26天",
    "need_onboarding_time": "2026年12月1日",
}


async def stored(session: AsyncSession) -> dict[str, Customer]:
    """The customers, by phone or else WeChat id, read afresh."""
    rows = await session.scalars(select(Customer).execution_options(populate_existing=True))
    return {customer.phone or customer.wechat_id or "": customer for customer in rows}


def columns_of(customer: Customer, names: list[str]) -> dict[str, Any]:
    return {name: getattr(customer, name) for name in names}


@pytest.fixture
async def manager(session: AsyncSession) -> User:
    await session.execute(delete(Customer))  # committed customers of earlier tests
    return await make_user(session, Role.manager)


@pytest.fixture
async def headers(client: httpx.AsyncClient, manager: User) -> dict[str, str]:
    return await token_for(client, manager)


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_every_household_column_imports_under_its_chinese_header(
    client: httpx.AsyncClient,
    session: AsyncSession,
    manager: User,
    headers: dict[str, str],
    kind: str,
) -> None:
    header = ["姓名", "手机号", "签约状态", *HOUSEHOLD_CELLS]
    rows = [header, ["王女士", "13800138001", "已签约", *HOUSEHOLD_CELLS.values()]]
    content = csv_bytes(rows) if kind == "csv" else xlsx_bytes(rows)
    response = await upload(client, headers, f"家政.{kind}", content)
    assert response.status_code == 200, response.text
    customer = (await stored(session))["13800138001"]
    assert columns_of(customer, list(HOUSEHOLD_STORED)) == HOUSEHOLD_STORED
    # Stamped as a customer made by hand is: signed now, last changed by the importer.
    assert customer.signed_at is not None and customer.last_updated_by_id == manager.id


async def test_excel_dates_and_numbers_import_as_typed_in_excel(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    rows = [
        ["姓名", "手机号", "期望上户日期", "预产期", "薪资预算", "家庭人口", "成交金额"],
        ["张三", 13800138000, datetime(2026, 12, 1), date(2027, 1, 5), 8000, 3.0, 9999.99],
        ["李四", 13900139000, datetime(2026, 12, 1, 9, 30), None, "8000", "3", "100"],
    ]
    response = await upload(client, headers, "a.xlsx", xlsx_bytes(rows))
    assert response.status_code == 200, response.text
    found = await stored(session)
    zhang, li = found["13800138000"], found["13900139000"]
    assert (zhang.expected_start_date, zhang.expected_delivery_date) == (
        date(2026, 12, 1),
        date(2027, 1, 5),
    )
    assert (zhang.salary_budget, zhang.family_size, zhang.deal_amount) == (8000, 3, 9999.99)
    assert (li.expected_start_date, li.salary_budget, li.deal_amount) == (
        date(2026, 12, 1),
        8000,
        100,
    )


@pytest.mark.parametrize("typed", ["2026/12/1", "2026/12/01 0:00", "2026.12.1", "2026年12月1日"])
async def test_dates_as_excel_writes_them_into_a_csv_import(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str], typed: str
) -> None:
    content = csv_bytes([["姓名", "手机号", "预产期"], ["张三", "13800138000", typed]])
    response = await upload(client, headers, "a.csv", content)
    assert response.status_code == 200, response.text
    assert (await stored(session))["13800138000"].expected_delivery_date == date(2026, 12, 1)


async def test_bad_household_cells_are_reported_per_row_and_nothing_is_imported(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    header = [
        "姓名",
        "手机号",
        "薪资预算",
        "预产期",
        "休息方式",
        "学历要求",
        "家庭人口",
        "成交金额",
        "身份证号",
    ]
    good = ["张三", "13800138000", "8000", "2026-12-01", "单休", "初中", "3", "100", ""]
    content = csv_bytes(
        [
            header,
            good,
            ["李四", "13900139000", "很多", "明年", "周休", "博士", "21", "-1", "1" * 33],
            ["王五", "13700137000", "50001", "2026-02-30", "", "", "2.5", "10000000.01", ""],
        ]
    )
    body = assert_error(await upload(client, headers, "a.csv", content), 400, "VALIDATION_ERROR")
    assert body["message"] == "导入失败：2 行数据有误（共 11 处），未导入任何客户"
    problems = [(d["row"], d["column"], d["value"], d["message"]) for d in body["error"]["details"]]
    assert problems == [
        (3, "身份证号", "1" * 33, "身份证号不能超过 32 个字符"),
        (3, "薪资预算", "很多", "薪资预算必须是数字"),
        (3, "预产期", "明年", "预产期格式不正确"),
        (3, "家庭人口", "21", "家庭人口不能超过20人"),
        (3, "休息方式", "周休", "休息方式必须是：单休、双休、无休、调休、待定之一"),
        (3, "学历要求", "博士", "学历要求必须在指定选项中选择"),
        (3, "成交金额", "-1", "成交金额不能为负数"),
        (4, "薪资预算", "50001", "薪资预算不能高于50000元"),
        (4, "预产期", "2026-02-30", "预产期格式不正确"),
        (4, "家庭人口", "2.5", "家庭人口必须是整数"),
        (4, "成交金额", "10000000.01", "成交金额不能超过1000万元"),
    ]
    assert [d["field"] for d in body["error"]["details"] if d["row"] == 4] == [
        "salaryBudget",
        "expectedDeliveryDate",
        "familySize",
        "dealAmount",
    ]
    assert await stored(session) == {}


async def test_a_wechat_id_stands_in_for_a_phone_and_both_are_unique(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    only_wechat = csv_bytes([["姓名", "微信号"], ["微信客户", "wx-only"]])
    response = await upload(client, headers, "a.csv", only_wechat)
    assert response.status_code == 200, response.text
    existing = (await stored(session))["wx-only"]
    assert existing.phone is None
    number = existing.customer_no  # a failed request expires what the session holds

    content = csv_bytes(
        [
            ["姓名", "手机号", "微信号"],
            ["甲", "", "wx-new"],
            ["乙", "13800138000", "wx-new"],
            ["丙", "", "wx-only"],
            ["丁", "", ""],
            ["戊", "12345", "wx-e"],
        ]
    )
    body = assert_error(await upload(client, headers, "b.csv", content), 400, "VALIDATION_ERROR")
    problems = [(d["row"], d["field"], d["message"]) for d in body["error"]["details"]]
    assert problems == [
        (3, "wechatId", "微信号与第 2 行重复"),
        (4, "wechatId", f"微信号已存在（客户 {number}）"),
        (5, "phone", "请填写手机号或微信号"),
        (6, "phone", "手机号格式不正确（需为中国大陆11位手机号）"),
    ]
    assert set(await stored(session)) == {"wx-only"}


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (["姓名", "地址"], "缺少必需的列：手机号或微信号"),
        (["手机号", "微信号"], "缺少必需的列：姓名"),
    ],
)
async def test_a_file_needs_a_name_column_and_a_phone_or_wechat_column(
    client: httpx.AsyncClient, headers: dict[str, str], header: list[str], words: str
) -> None:
    content = csv_bytes([header, ["张三", "13800138000"]])
    body = assert_error(await upload(client, headers, "a.csv", content), 400, "BAD_REQUEST")
    assert body["message"] == words


async def test_the_need_card_fills_the_empty_structured_fields_on_import(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    content = csv_bytes(
        [
            ["姓名", "手机号", "薪资预算", "需求-薪资", "需求-房屋面积", "需求-订单类型"],
            ["张三", "13800138000", "", "7000-7500", "90平", "保洁"],
            ["李四", "13900139000", "9000", "7000", "", ""],
        ]
    )
    response = await upload(client, headers, "a.csv", content)
    assert response.status_code == 200, response.text
    found = await stored(session)
    zhang, li = found["13800138000"], found["13900139000"]
    assert (zhang.salary_budget, zhang.home_area, zhang.service_category) == (7000, 90, "保洁")
    assert (zhang.need_salary, zhang.need_house_area) == ("7000-7500", "90平")
    assert (li.salary_budget, li.need_salary) == (9000, "7000")


async def test_the_template_lists_every_column_and_its_example_imports(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    response = await client.get(
        "/api/customers/import-template", params={"format": "csv"}, headers=headers
    )
    header, example = csv_rows(response.content)
    assert header == TEMPLATE_HEADERS
    imported = await upload(client, headers, "t.csv", response.content)
    assert imported.status_code == 200, imported.text
    customer = (await stored(session))["13800138000"]
    assert (customer.salary_budget, customer.rest_schedule) == (8000, "单休")
    assert customer.expected_start_date == date(2026, 12, 1)
    assert dict(zip(header, example, strict=True))["微信号"] == customer.wechat_id


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_a_customer_with_every_field_filled_exports_and_imports_back_the_same(
    client: httpx.AsyncClient,
    session: AsyncSession,
    headers: dict[str, str],
    kind: str,
) -> None:
    advisor = await make_user(session, Role.advisor)
    advisor_headers = await token_for(client, advisor)
    created = await client.post("/api/customers", json=FULL_RECORD, headers=advisor_headers)
    assert created.status_code == 200, created.text
    before = {key: created.json()["data"][key] for key in FULL_RECORD}

    exported = await client.get("/api/customers/export", params={"format": kind}, headers=headers)
    assert exported.status_code == 200, exported.text
    rows = csv_rows(exported.content) if kind == "csv" else xlsx_rows(exported.content)
    assert rows[0] == EXPORT_HEADERS and len(rows) == 2
    cells = dict(zip(EXPORT_HEADERS, rows[1], strict=True))
    assert (cells["负责人"], cells["预产期"], cells["成交金额"]) == (
        advisor.username,
        "2026-12-20",
        "16800.5",
    )

    await session.execute(delete(Customer))
    again = await upload(client, headers, f"export.{kind}", exported.content)
    assert again.status_code == 200, again.text
    listed = await client.get("/api/customers", headers=headers)
    [item] = listed.json()["data"]["items"]
    assert {key: item[key] for key in FULL_RECORD} == before
    assert item["assignedTo"] == advisor.id
    assert await session.scalar(select(func.count()).select_from(Customer)) == 1


async def test_an_export_shows_empty_cells_for_what_is_not_filled_in(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = {"name": "只有微信", "wechatId": "wx-1", "dealAmount": 500}
    created = await client.post("/api/customers", json=body, headers=headers)
    assert created.status_code == 200, created.text
    exported = await client.get("/api/customers/export", headers=headers)
    [row] = csv_rows(exported.content)[1:]
    cells = dict(zip(EXPORT_HEADERS, row, strict=True))
    assert (cells["手机号"], cells["微信号"], cells["成交金额"], cells["薪资预算"]) == (
        "",
        "wx-1",
        "500",
        "",
    )


async def test_cells_no_form_could_take_are_row_errors_never_a_500(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    content = csv_bytes(
        [
            ["姓名", "手机号", "期望上户日期", "预产期", "成交金额", "服务天数"],
            ["张三", "13800138000", "9999-12-31T23:59:59-12:00", "0001-01-01", "9" * 30, "nan"],
        ]
    )
    body = assert_error(await upload(client, headers, "a.csv", content), 400, "VALIDATION_ERROR")
    problems = [(d["field"], d["message"]) for d in body["error"]["details"]]
    assert problems == [
        ("expectedStartDate", DATE_RANGE_MESSAGE),
        ("expectedDeliveryDate", DATE_RANGE_MESSAGE),
        ("serviceDays", "服务天数必须是整数"),
        ("dealAmount", "成交金额不能超过1000万元"),
    ]
    assert await stored(session) == {}
