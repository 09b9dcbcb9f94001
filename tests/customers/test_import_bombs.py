"""Spreadsheets made to cost far more to read than their size (XLSX import bombs): each is
refused before openpyxl parses it, or read no further than a real sheet goes; and one
import runs at a time."""

from __future__ import annotations

import asyncio
import io
import threading
import zipfile
from collections.abc import Iterable, Iterator
from functools import cache

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.customers.test_transfer import csv_bytes, customers, upload, xlsx_bytes
from tests.factories import add_user, staff_headers
from wxcrm.core.db import Database
from wxcrm.customers.models import Customer
from wxcrm.customers.transfer import service as transfer_service
from wxcrm.users.models import Role

# -- a workbook written part by part, so that a bomb costs little to build -------------------

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELATIONS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE = "http://schemas.openxmlformats.org/package/2006"
_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_PARTS = {
    "[Content_Types].xml": (
        f'<Types xmlns="{_PACKAGE}/content-types">'
        f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        f'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_TYPE}.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_TYPE}.worksheet+xml"/>'
        f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_TYPE}.sharedStrings+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        f'<Relationships xmlns="{_PACKAGE}/relationships">'
        f'<Relationship Id="rId1" Type="{_RELATIONS}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    ),
    "xl/workbook.xml": (
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_RELATIONS}">'
        '<sheets><sheet name="客户" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<Relationships xmlns="{_PACKAGE}/relationships">'
        f'<Relationship Id="rId1" Type="{_RELATIONS}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_RELATIONS}/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>"
    ),
}
# Excel keeps a sheet's text in the shared strings: the header's two are strings 0 and 1.
HEADER_ROW = b'<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
HEADER_STRINGS = "<si><t>姓名</t></si><si><t>手机号</t></si>".encode()


def workbook(rows: Iterable[bytes], strings: Iterable[bytes] = (), *, dimension: str = "") -> bytes:
    """An XLSX whose sheet holds the header and then `rows` (<row> elements), and whose
    shared strings hold the header's and then `strings` (<si> elements). Excel declares
    the sheet's `dimension` (as "A1:B9"); without one, openpyxl parses the whole sheet
    to find it before it reads a row."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, text in _PARTS.items():
            archive.writestr(name, text)
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            declared = f'<dimension ref="{dimension}"/>' if dimension else ""
            sheet.write(f'<worksheet xmlns="{_MAIN}">{declared}<sheetData>'.encode())
            sheet.write(HEADER_ROW)
            for chunk in rows:
                sheet.write(chunk)
            sheet.write(b"</sheetData></worksheet>")
        with archive.open("xl/sharedStrings.xml", "w") as table:
            table.write(f'<sst xmlns="{_MAIN}">'.encode() + HEADER_STRINGS)
            for chunk in strings:
                table.write(chunk)
            table.write(b"</sst>")
    return out.getvalue()


def data_row(number: int, name: str, phone: str) -> bytes:
    cells = (
        f'<c r="{column}{number}" t="inlineStr"><is><t>{text}</t></is></c>'
        for column, text in (("A", name), ("B", phone))
    )
    return f'<row r="{number}">{"".join(cells)}</row>'.encode()


def _repeated(item: bytes, count: int, per_chunk: int = 100_000) -> Iterator[bytes]:
    for start in range(0, count, per_chunk):
        yield item * min(per_chunk, count - start)


# Each bomb ends with a real customer, whom the old code imported after 9 s to 3 minutes.
ROWS = 1_000_000


@cache
def empty_rows_bomb() -> bytes:
    """A million empty <row/> in about 10 KB: 6 MB of sheet, some 670 times its packed size."""
    return workbook([*_repeated(b"<row/>", ROWS), data_row(ROWS + 2, "张三", "13800138000")])


@cache
def numbered_empty_rows() -> bytes:
    """Half a million empty rows that carry their numbers, in a sheet that declares its size as
    Excel does: a ratio of 7, like a real sheet's, and under every bound on the zip. Only a
    run of blank rows ending the sheet stops them."""

    def rows() -> Iterator[bytes]:
        for start in range(2, 500_002, 10_000):
            yield "".join(f'<row r="{n}"/>' for n in range(start, start + 10_000)).encode()
        yield data_row(500_002, "张三", "13800138000")

    return workbook(rows(), dimension="A1:B500002")


@cache
def shared_strings_bomb() -> bytes:
    """11.5 million empty shared strings: 150 MB in some 300 KB, under the old 200 MB bound,
    and every one loaded by openpyxl before the first row."""
    return workbook([data_row(2, "张三", "13800138000")], _repeated(b"<si><t/></si>", 11_500_000))


@cache
def many_shared_strings() -> bytes:
    """600,000 distinct shared strings: 12 MB at a real sheet's ratio, but 1.2 million XML
    elements (about 10 s of openpyxl)."""

    def strings() -> Iterator[bytes]:
        for start in range(0, 600_000, 50_000):
            yield "".join(f"<si><t>{n}</t></si>" for n in range(start, start + 50_000)).encode()

    return workbook([data_row(2, "张三", "13800138000")], strings())


@pytest.fixture
async def headers(session: AsyncSession) -> dict[str, str]:
    await session.execute(delete(Customer))  # earlier tests may have committed some
    return staff_headers(await add_user(session, Role.manager))


# -- refused before openpyxl opens the file -------------------------------------------------


async def test_a_million_empty_rows_in_10_kb_are_refused_for_their_ratio(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    bomb = empty_rows_bomb()
    assert len(bomb) < 50_000
    body = assert_error(await upload(client, headers, "rows.xlsx", bomb), 400, "BAD_REQUEST")
    assert "解压后是压缩时的" in body["message"], body["message"]
    assert await customers(session) == {}


async def test_a_shared_strings_bomb_is_refused_for_its_unpacked_size(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    bomb = shared_strings_bomb()
    assert len(bomb) < 1_000_000
    response = await upload(client, headers, "strings.xlsx", bomb)
    body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert "解压后过大" in body["message"] and "拆分" in body["message"], body["message"]
    assert await customers(session) == {}


async def test_too_many_shared_strings_at_a_plausible_ratio_are_refused_for_their_count(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    bomb = many_shared_strings()
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        strings = archive.getinfo("xl/sharedStrings.xml")
        # Under the bounds on a part's unpacked size (50 MB) and ratio (100).
        assert strings.file_size < 50 * 1024 * 1024
        assert strings.file_size < 100 * strings.compress_size
    response = await upload(client, headers, "strings.xlsx", bomb)
    body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert "XML 元素" in body["message"], body["message"]
    assert await customers(session) == {}


def _with_parts(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in _PARTS.items():
            archive.writestr(name, text)
        for n in range(count):
            archive.writestr(f"xl/media/{n}.bin", b"")
    return out.getvalue()


def _damaged(content: bytes, part: str, how: str) -> bytes:
    """`content` with `part`'s packed bytes scrambled, or its compression method unknown."""
    data = bytearray(content)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        local = archive.getinfo(part).header_offset
    name_length = int.from_bytes(data[local + 26 : local + 28], "little")
    extra_length = int.from_bytes(data[local + 28 : local + 30], "little")
    start = local + 30 + name_length + extra_length
    if how == "bytes":
        for offset in range(start + 10, start + 200):
            data[offset] ^= 0x5A
    else:  # in the central directory, at the end, which zipfile goes by
        central = data.rfind(part.encode()) - 46
        assert data[central : central + 4] == b"PK\x01\x02"
        data[central + 10 : central + 12] = (99).to_bytes(2, "little")
    return bytes(data)


async def test_a_zip_with_too_many_parts_or_damaged_is_a_400_never_a_500(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    body = assert_error(
        await upload(client, headers, "a.xlsx", _with_parts(1_001)), 400, "BAD_REQUEST"
    )
    assert "部件过多" in body["message"], body["message"]

    real = xlsx_bytes([["姓名", "手机号"], *[["张三", f"138{n:08d}"] for n in range(2_000)]])
    for how in ("bytes", "method"):
        damaged = _damaged(real, "xl/worksheets/sheet1.xml", how)
        body = assert_error(await upload(client, headers, "a.xlsx", damaged), 400, "BAD_REQUEST")
        assert "已损坏" in body["message"], (how, body["message"])
    assert await customers(session) == {}


# -- a run of blank rows ends the sheet ------------------------------------------------------


async def test_a_run_of_100_blank_rows_ends_the_sheet_and_the_message_says_so(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    first = [["张三", "13800138000"], ["李四", "13900139000"]]
    later = [["王五", "13700137000"]]
    content = xlsx_bytes([["姓名", "手机号"], *first, *[[]] * 150, *later])
    response = await upload(client, headers, "a.xlsx", content)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"imported": 2}
    message = response.json()["message"]
    assert message.startswith("导入成功：共 2 个客户") and "第 4 行起连续 100 行为空" in message
    assert set(await customers(session)) == {"13800138000", "13900139000"}

    # 99 blank lines do not end it; the same rule holds for CSV.
    await session.execute(delete(Customer))
    content = csv_bytes([["姓名", "手机号"], *first, *[[]] * 99, *later])
    response = await upload(client, headers, "a.csv", content)
    assert response.json()["data"] == {"imported": 3}, response.text
    assert response.json()["message"] == "导入成功：共 3 个客户"

    # A stray cell a million rows down, as a sheet formatted to its end may have: read no
    # further than 100 rows past the data.
    content = workbook(
        [data_row(2, "赵六", "13600136000"), data_row(1_048_576, "孙七", "13500135000")]
    )
    response = await upload(client, headers, "a.xlsx", content)
    assert response.json()["data"] == {"imported": 1}, response.text
    assert "第 3 行起" in response.json()["message"]
    assert "13500135000" not in await customers(session)


async def test_empty_rows_at_a_real_sheets_ratio_are_read_only_100_deep(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    response = await upload(client, headers, "rows.xlsx", numbered_empty_rows())
    body = assert_error(response, 400, "BAD_REQUEST")
    assert "没有客户数据" in body["message"] and "第 2 行起连续 100 行为空" in body["message"]
    assert await customers(session) == {}


async def test_data_rows_spread_out_by_blank_ones_are_refused_past_20000_rows(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    # 250 customers, each after 98 blank lines: under both the data-row limit and the run.
    rows: list[list[str]] = [["姓名", "手机号"]]
    for n in range(250):
        rows += [[], *[[]] * 97, ["张三", f"138{n:08d}"]]
    assert len(rows) > 20_000
    body = assert_error(await upload(client, headers, "a.csv", csv_bytes(rows)), 400, "BAD_REQUEST")
    assert "表格超过 20000 行（含空行）" in body["message"], body["message"]
    assert await customers(session) == {}


# -- one import at a time --------------------------------------------------------------------


async def test_a_second_import_while_one_is_read_is_a_429_and_other_requests_are_served(
    live_client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with database.writer() as writer:
        headers = staff_headers(await add_user(writer, Role.manager))
    reading, finish = threading.Event(), threading.Event()
    read_sheet = transfer_service.read_sheet
    calls = 0

    def held_read_sheet(filename: str, content: bytes) -> transfer_service.Sheet:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first import stays in its worker thread until told
            reading.set()
            finish.wait(timeout=30)
        return read_sheet(filename, content)

    monkeypatch.setattr(transfer_service, "read_sheet", held_read_sheet)
    first = csv_bytes([["姓名", "手机号"], ["张三", "13800138000"]])
    second = csv_bytes([["姓名", "手机号"], ["李四", "13900139000"]])
    running = asyncio.create_task(upload(live_client, headers, "a.csv", first))
    try:
        assert await asyncio.to_thread(reading.wait, 10)
        refused = await upload(live_client, headers, "b.csv", second)
        # Reading runs off the event loop: other requests are answered meanwhile.
        template = await live_client.get("/api/customers/import-template", headers=headers)
    finally:
        finish.set()
        done = await running
    body = assert_error(refused, 429, "RATE_LIMITED")
    assert body["message"] == "已有导入正在进行，请稍后再试"
    assert int(refused.headers["retry-after"]) > 0
    assert template.status_code == 200, template.text
    assert done.status_code == 200, done.text

    async with database.reader() as reader:
        phones = set(await reader.scalars(select(Customer.phone)))
    assert phones == {"13800138000"}
    # The slot is free again, after a success as after a refusal.
    bad = await upload(live_client, headers, "c.csv", csv_bytes([["姓名", "手机号"]]))
    assert_error(bad, 400, "BAD_REQUEST")
    again = await upload(live_client, headers, "b.csv", second)
    assert again.status_code == 200, again.text
