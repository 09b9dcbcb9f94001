"""Import and export of customers as CSV and XLSX, through the API."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.factories import make_user, token_for
from wxcrm.customers.models import Customer
from wxcrm.customers.transfer import service as transfer_service
from wxcrm.users.models import Role, User

HEADERS = [
    "姓名",
    "手机号",
    "线索来源",
    "服务类别",
    "签约状态",
    "线索等级",
    "地址",
    "备注",
    "微信号",
]
# The import template's header, in its order (the export's, between 客户编号 and 创建时间).
TEMPLATE_HEADERS = [
    "姓名",
    "手机号",
    "微信号",
    "身份证号",
    "线索来源",
    "服务类别",
    "签约状态",
    "线索等级",
    "负责人",
    "地址",
    "地区",
    "薪资预算",
    "期望上户日期",
    "预产期",
    "家庭面积",
    "家庭人口",
    "休息方式",
    "服务天数",
    "年龄要求",
    "性别要求",
    "籍贯要求",
    "学历要求",
    "成交金额",
    "备注",
    "需求-订单类型",
    "需求-工作时间",
    "需求-薪资",
    "需求-休息时间",
    "需求-家庭成员",
    "需求-服务地址",
    "需求-房屋面积",
    "需求-工作内容",
    "需求-备注",
    "需求-服务周期",
    "需求-上户时间",
]
EXPORT_HEADERS = ["客户编号", *TEMPLATE_HEADERS, "创建时间", "最后跟进时间"]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_bytes(rows: list[list[Any]], encoding: str = "utf-8-sig") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def xlsx_rows(content: bytes) -> list[list[Any]]:
    workbook = load_workbook(io.BytesIO(content))
    sheet = workbook.worksheets[0]
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def csv_rows(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], filename: str, content: bytes
) -> httpx.Response:
    return await client.post(
        "/api/customers/import", files={"file": (filename, content)}, headers=headers
    )


async def customers(session: AsyncSession) -> dict[str, Customer]:
    rows = await session.scalars(select(Customer).execution_options(populate_existing=True))
    return {customer.phone: customer for customer in rows}


@pytest.fixture
async def manager(session: AsyncSession) -> User:
    # Earlier tests on the same database may have committed customers: start from none.
    await session.execute(delete(Customer))
    return await make_user(session, Role.manager)


@pytest.fixture
async def headers(client: httpx.AsyncClient, manager: User) -> dict[str, str]:
    return await token_for(client, manager)


async def test_a_csv_imports_every_row(
    client: httpx.AsyncClient, session: AsyncSession, manager: User, headers: dict[str, str]
) -> None:
    advisor = await make_user(session, Role.advisor)
    content = csv_bytes(
        [
            [*HEADERS, "负责人"],
            ["张三", "138-0013-8000", "美团", "月嫂", "已签约", "A类", "杭州", "老客户", "zs", ""],
            ["李四", "+86 139 0013 9000", "", "", "", "", "", "", "", advisor.username],
            [],  # blank lines are skipped
            ["王五", "13700137000", "抖音", "保洁", "匹配中", "B类", "", "", "", ""],
        ]
    )
    response = await upload(client, headers, "客户.csv", content)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"imported": 3}
    assert response.json()["message"] == "导入成功：共 3 个客户"

    found = await customers(session)
    assert set(found) == {"13800138000", "13900139000", "13700137000"}
    zhang, li = found["13800138000"], found["13900139000"]
    assert (zhang.name, zhang.lead_source, zhang.service_category) == ("张三", "美团", "月嫂")
    assert (zhang.contract_status, zhang.lead_level, zhang.remark) == ("已签约", "A类", "老客户")
    assert (zhang.address, zhang.wechat_id, zhang.created_by_id) == ("杭州", "zs", manager.id)
    assert zhang.owner_id is None and zhang.pool_entered_at is not None  # the public pool
    assert zhang.customer_no.startswith("CUS") and len(zhang.customer_no) == 14
    # Empty cells take the defaults; an owner by username takes the customer out of the pool.
    assert (li.lead_source, li.contract_status, li.service_category) == ("其他", "待定", None)
    assert li.owner_id == advisor.id and li.assigned_by_id == manager.id
    assert li.pool_entered_at is None and li.assigned_at is not None
    assert len({c.customer_no for c in found.values()}) == 3

    # Excel on Chinese Windows saves CSV in GBK.
    gbk = csv_bytes([["姓名", "手机号", "服务类别"], ["赵六", "13600136000", "住家育儿嫂"]], "gbk")
    response = await upload(client, headers, "客户.csv", gbk)
    assert response.status_code == 200, response.text
    zhao = (await customers(session))["13600136000"]
    assert (zhao.name, zhao.service_category) == ("赵六", "住家育儿嫂")


async def test_an_xlsx_imports_with_phones_stored_as_numbers_and_english_headers(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    content = xlsx_bytes(
        [
            ["name", "Phone", "leadSource", "remarks", "其他列"],
            ["张三", 13800138000, "小红书", 12.5, "ignored"],
            ["李四", 13900139000.0, None, None, None],
            [None, None, None, None, None],
            ["王五", "13700137000", "官网", None, None],
        ]
    )
    response = await upload(client, headers, "customers.XLSX", content)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"imported": 3}
    found = await customers(session)
    assert set(found) == {"13800138000", "13900139000", "13700137000"}
    assert found["13800138000"].remark == "12.5"
    assert found["13800138000"].lead_source == "小红书"

    # A sheet that declares a smaller size than it has still imports every row.
    await session.execute(delete(Customer))
    rows = [["姓名", "手机号"], ["张三", "13800138000"], ["李四", "13900139000"]]
    content = _declaring_size(xlsx_bytes(rows), "A1:B2")
    response = await upload(client, headers, "short.xlsx", content)
    assert response.json()["data"] == {"imported": 2}, response.text


def _declaring_size(content: bytes, ref: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]*"', f'<dimension ref="{ref}"'.encode(), data)
                assert ref.encode() in data
            target.writestr(entry, data)
    return out.getvalue()


async def test_one_bad_row_imports_nothing_and_names_every_problem(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    content = csv_bytes(
        [
            ["姓名", "手机号", "线索来源", "负责人"],
            ["张三", "13800138000", "美团", ""],
            ["李四", "12345", "路边", "nobody"],
            ["", "13900139000", "", ""],
        ]
    )
    body = assert_error(await upload(client, headers, "客户.csv", content), 400, "VALIDATION_ERROR")
    assert "2 行" in body["message"] and "未导入" in body["message"]
    problems = [(d["row"], d["field"], d["value"]) for d in body["error"]["details"]]
    assert problems == [
        (3, "phone", "12345"),
        (3, "leadSource", "路边"),
        (3, "owner", "nobody"),
        (4, "name", ""),
    ]
    assert all(d["message"] for d in body["error"]["details"])
    assert await customers(session) == {}


async def test_duplicate_phones_and_owners_who_are_not_active_advisors_are_row_errors(
    client: httpx.AsyncClient, session: AsyncSession, manager: User, headers: dict[str, str]
) -> None:
    manager_username = manager.username  # a failed request expires what the session holds
    first = csv_bytes([["姓名", "手机号"], ["张三", "13800138000"]])
    assert (await upload(client, headers, "a.csv", first)).status_code == 200
    existing = (await customers(session))["13800138000"].customer_no

    content = csv_bytes(
        [
            ["姓名", "手机号"],
            ["李四", "13900139000"],
            ["李四又一次", "139 0013 9000"],
            ["张三", "+8613800138000"],
        ]
    )
    body = assert_error(await upload(client, headers, "b.csv", content), 400, "VALIDATION_ERROR")
    details = body["error"]["details"]
    assert [(d["row"], d["field"]) for d in details] == [(3, "phone"), (4, "phone")]
    assert "第 2 行" in details[0]["message"]
    assert existing in details[1]["message"]
    assert set(await customers(session)) == {"13800138000"}

    gone = await make_user(session, Role.advisor)
    gone.is_active = False
    await session.flush()
    content = csv_bytes(
        [
            ["姓名", "手机号", "负责人"],
            ["李四", "13900139000", gone.username],
            ["王五", "13700137000", manager_username],  # only advisors own customers
        ]
    )
    body = assert_error(await upload(client, headers, "c.csv", content), 400, "VALIDATION_ERROR")
    details = body["error"]["details"]
    assert [(d["row"], d["field"]) for d in details] == [(2, "owner"), (3, "owner")]


def _too_many_rows() -> bytes:
    return csv_bytes([["姓名", "手机号"]] + [["张三", f"138{i:08d}"] for i in range(10_001)])


UNUSABLE = [
    ("a.csv", b"", "为空"),
    ("a.csv", b"\xef\xbb\xbf\r\n\r\n", "为空"),
    ("a.xlsx", xlsx_bytes([]), "为空"),
    ("a.csv", csv_bytes([["姓名", "手机号"]]), "没有客户数据"),
    ("a.csv", csv_bytes([["foo", "bar"], ["张三", "13800138000"]]), "表头"),
    ("a.csv", csv_bytes([["姓名", "地址"], ["张三", "杭州"]]), "手机号"),
    ("a.csv", csv_bytes([["姓名", "手机号", "name"], ["张三", "1", "x"]]), "重复"),
    ("a.txt", csv_bytes([["姓名", "手机号"]]), ".xlsx"),
    ("noextension", b"x", ".xlsx"),
    ("a.xls", b"\xd0\xcf\x11\xe0" + b"\0" * 100, ".xlsx"),
    ("a.xlsx", b"\xd0\xcf\x11\xe0" + b"\0" * 100, ".xlsx"),
    ("a.xlsx", b"not a zip at all", "XLSX"),
    ("a.xlsx", xlsx_bytes([["姓名"]])[:500], "XLSX"),
    ("a.xlsx", b"PK\x03\x04" + b"\0" * 200, "XLSX"),
    ("a.csv", xlsx_bytes([["姓名", "手机号"]]), "不是 CSV"),
    ("a.csv", b"\xff\xfe\x00\x00\x81\x30", "编码"),
    ("a.csv", "姓名,phone\n\x00a,b\n".encode(), "空字符"),
    ("a.csv", f'姓名,phone\n"{"x" * 200_000}",1\n'.encode(), "CSV 文件格式错误"),
    ("a.csv", _too_many_rows(), "10000"),
]


async def test_unusable_files_are_refused_with_a_clear_400(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    for filename, content, words in UNUSABLE:
        response = await upload(client, headers, filename, content)
        body = assert_error(response, 400, "BAD_REQUEST")
        assert words in body["message"], (filename, content[:40], body["message"])
    assert await customers(session) == {}


async def test_refused_requests(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    no_file = await client.post("/api/customers/import", data={"x": "1"}, headers=headers)
    assert_error(no_file, 400, "VALIDATION_ERROR")
    too_large = await upload(client, headers, "a.csv", b"a" * (10 * 1024 * 1024 + 1))
    assert_error(too_large, 413, "PAYLOAD_TOO_LARGE")
    assert_error(await client.post("/api/customers/import"), 401, "UNAUTHORIZED")
    assert_error(await client.get("/api/customers/export"), 401, "UNAUTHORIZED")
    bad = await client.get("/api/customers/export", params={"format": "pdf"}, headers=headers)
    assert_error(bad, 400, "VALIDATION_ERROR")

    advisor = await make_user(session, Role.advisor)
    content = csv_bytes([["姓名", "手机号"], ["张三", "13800138000"]])
    response = await upload(client, await token_for(client, advisor), "a.csv", content)
    assert_error(response, 403, "FORBIDDEN")
    assert await customers(session) == {}

    # Under the import's own limit, a body far over the default 1 MiB gets in.
    wide = [["姓名", "手机号", "其他"]] + [
        ["张三", f"1380013800{i}", "x" * 100_000] for i in range(8)
    ]
    response = await upload(client, headers, "a.csv", csv_bytes(wide))
    assert response.status_code == 200, response.text


SAMPLE = [
    ["张三", "13800138000", "美团", "月嫂", "已签约", "A类", "杭州, 西湖", '说"好的"\n明天', "zs"],
    ['=HYPERLINK("http://x")', "13900139000", "抖音", "", "待定", "", "@SUM(A1)", "-1", "+w"],
    ["王五", "13700137000", "其他", "保洁", "匹配中", "C类", "<b>&amp;</b>", "", ""],
]


async def _import_sample(client: httpx.AsyncClient, headers: dict[str, str], advisor: User) -> None:
    rows = [[*HEADERS, "负责人"]]
    rows += [[*row, advisor.username if i == 0 else ""] for i, row in enumerate(SAMPLE)]
    response = await upload(client, headers, "sample.csv", csv_bytes(rows))
    assert response.status_code == 200, response.text


def _fields(customer: Customer) -> tuple[Any, ...]:
    return (
        customer.name,
        customer.phone,
        customer.lead_source,
        customer.service_category,
        customer.contract_status,
        customer.lead_level,
        customer.address,
        customer.remark,
        customer.wechat_id,
        customer.owner_id,
    )


async def test_an_export_imports_back_into_an_empty_database(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    advisor = await make_user(session, Role.advisor)
    await _import_sample(client, headers, advisor)
    before = {phone: _fields(c) for phone, c in (await customers(session)).items()}

    for kind in ("csv", "xlsx"):
        response = await client.get(
            "/api/customers/export", params={"format": kind}, headers=headers
        )
        assert response.status_code == 200, response.text
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        filename = unquote(disposition.split("filename*=UTF-8''")[1])
        assert re.fullmatch(rf"客户列表-20\d{{6}}\.{kind}", filename), filename

        if kind == "csv":
            assert response.headers["content-type"].startswith("text/csv")
            rows = csv_rows(response.content)
        else:
            assert response.headers["content-type"] == XLSX_TYPE
            rows = xlsx_rows(response.content)
            _assert_text_cells_only(response.content)
        assert rows[0] == EXPORT_HEADERS
        assert len(rows) == 4
        by_phone = {row[2]: dict(zip(EXPORT_HEADERS, row, strict=True)) for row in rows[1:]}
        assert by_phone["13800138000"]["负责人"] == advisor.username
        # Would-be formulas are quoted, so a spreadsheet shows them as text.
        formula = by_phone["13900139000"]
        assert formula["姓名"] == '\'=HYPERLINK("http://x")'
        assert (formula["地址"], formula["备注"], formula["微信号"]) == ("'@SUM(A1)", "'-1", "'+w")

        await session.execute(delete(Customer))
        again = await upload(client, headers, f"export.{kind}", response.content)
        assert again.status_code == 200, again.text
        assert again.json()["data"] == {"imported": 3}
        after = {phone: _fields(c) for phone, c in (await customers(session)).items()}
        assert after == before, kind

    # XML's own characters are escaped; control characters, which XML cannot hold, dropped.
    customer = (await customers(session))["13700137000"]
    customer.remark = "a<b>&c\x0b\x01d\r\ne"
    await session.flush()
    response = await client.get("/api/customers/export", params={"format": "xlsx"}, headers=headers)
    by_phone = {row[2]: row for row in xlsx_rows(response.content)[1:]}
    assert by_phone["13700137000"][EXPORT_HEADERS.index("备注")] == "a<b>&cd\r\ne"


def _assert_text_cells_only(content: bytes) -> None:
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert cells and all(cell.data_type == "s" for cell in cells)
    created = [row[EXPORT_HEADERS.index("创建时间")].value for row in sheet.iter_rows(min_row=2)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", str(v)) for v in created)


async def test_advisors_export_only_their_own_customers_and_filters_apply(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    advisor = await make_user(session, Role.advisor)
    await _import_sample(client, headers, advisor)
    advisor_headers = await token_for(client, advisor)

    mine = await client.get("/api/customers/export", headers=advisor_headers)
    assert mine.status_code == 200, mine.text
    assert [row[2] for row in csv_rows(mine.content)[1:]] == ["13800138000"]

    searched = await client.get(
        "/api/customers/export", params={"search": "王", "format": "csv"}, headers=headers
    )
    assert [row[1] for row in csv_rows(searched.content)[1:]] == ["王五"]
    pool = await client.get(
        "/api/customers/export",
        params={"inPublicPool": "true", "contractStatus": "待定"},
        headers=headers,
    )
    assert [row[2] for row in csv_rows(pool.content)[1:]] == ["13900139000"]

    # An advisor's export, imported by a manager into an empty database: the same customer.
    await session.execute(delete(Customer))
    again = await upload(client, headers, "mine.csv", mine.content)
    assert again.status_code == 200, again.text
    customer = (await customers(session))["13800138000"]
    assert (customer.name, customer.owner_id) == ("张三", advisor.id)


async def test_the_template_downloads_and_imports_as_it_is(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    for kind in ("csv", "xlsx"):
        response = await client.get(
            "/api/customers/import-template", params={"format": kind}, headers=headers
        )
        assert response.status_code == 200, response.text
        assert "filename*=UTF-8''" in response.headers["content-disposition"]
        rows = csv_rows(response.content) if kind == "csv" else xlsx_rows(response.content)
        assert rows[0] == TEMPLATE_HEADERS and len(rows) == 2
        await session.execute(delete(Customer))
        imported = await upload(client, headers, f"template.{kind}", response.content)
        assert imported.status_code == 200, imported.text
        assert await session.scalar(select(func.count()).select_from(Customer)) == 1


async def test_a_taken_customer_number_is_drawn_again_and_a_racing_phone_is_a_conflict(
    client: httpx.AsyncClient,
    session: AsyncSession,
    headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = csv_bytes([["姓名", "手机号"], ["张三", "13800138000"]])
    assert (await upload(client, headers, "a.csv", first)).status_code == 200
    taken = (await customers(session))["13800138000"].customer_no
    draws = iter([taken, "CUS00000000001", "CUS00000000002"])
    monkeypatch.setattr(transfer_service, "new_customer_number", lambda: next(draws))
    content = csv_bytes([["姓名", "手机号"], ["李四", "13900139000"], ["王五", "13700137000"]])
    response = await upload(client, headers, "b.csv", content)
    assert response.status_code == 200, response.text
    numbers = {phone: c.customer_no for phone, c in (await customers(session)).items()}
    assert numbers == {
        "13800138000": taken,
        "13900139000": "CUS00000000002",
        "13700137000": "CUS00000000001",
    }

    # A phone that another request adds between the check and the INSERT.
    async def nothing_taken(
        _session: AsyncSession, _column: Any, _values: list[str]
    ) -> dict[str, str]:
        return {}

    monkeypatch.setattr(transfer_service, "_taken", nothing_taken)
    monkeypatch.setattr(transfer_service, "new_customer_number", lambda: "CUS00000000003")
    again = csv_bytes([["姓名", "手机号"], ["张三", "13800138000"]])
    assert_error(await upload(client, headers, "c.csv", again), 409, "CONFLICT")
    assert len(await customers(session)) == 3
