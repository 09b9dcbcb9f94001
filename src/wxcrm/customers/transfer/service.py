"""Customers in and out of spreadsheets: import from CSV or XLSX, every row or
none, and export of the list as the caller sees it.

Reading and writing files is CPU work without I/O: `import_file` and `export_file` run it
in a worker thread, so a large file does not stall the event loop, and `import_file` takes
the process's one import slot.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import warnings
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from typing import Any

from annotated_types import MaxLen
from openpyxl import Workbook, load_workbook
from openpyxl.utils import get_column_letter
from pydantic import ValidationError
from pydantic.alias_generators import to_camel, to_snake
from sqlalchemy import Result, Row, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from starlette.concurrency import run_in_threadpool

from wxcrm.core import clock
from wxcrm.core.db import dialect_insert
from wxcrm.core.errors import (
    AppError,
    BadRequest,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    ValidationFailed,
    validation_details,
)
from wxcrm.core.ids import new_id
from wxcrm.core.models import utcnow
from wxcrm.core.phones import normalize_phone
from wxcrm.core.settings import Settings
from wxcrm.customers.leads import (
    DEFAULT_CONTRACT_STATUS,
    DEFAULT_LEAD_SOURCE,
    new_customer_number,
)
from wxcrm.customers.models import Customer
from wxcrm.customers.needs import HOUSEHOLD_FIELDS, REST_SCHEDULES, HouseholdIn
from wxcrm.customers.records.filters import SIGNED, CustomerFilters, filtered
from wxcrm.customers.records.service import MISSING_CONTACT, need_card_values
from wxcrm.customers.transfer.models import ImportStage
from wxcrm.users.models import Role, User

MAX_IMPORT_ROWS = 10_000
MAX_IMPORT_BYTES = 10 * 1024 * 1024
# A run of this many blank rows ends the sheet: a sheet can hold a million of them in a few
# KB of upload (or a stray cell far below the data), each one parsed and looked at.
BLANK_RUN_ENDS_SHEET = 100
# Rows read, blank ones included: data rows with 99 blank ones between them would otherwise
# make a million rows to read from 10,000 allowed.
MAX_SHEET_ROWS = 2 * MAX_IMPORT_ROWS

# An XLSX is a zip of XML, and openpyxl's cost goes with the number of XML elements (about
# 9 µs a sheet row, 17 µs a shared string, without lxml), not with the upload: deflate packs
# a million empty rows into 10 KB (13 s, 100 MB), and openpyxl loads every shared string
# before the first row (150 MB of them in 285 KB: 173 s, 1 GB). So the zip is looked at
# before openpyxl opens it. A real 10,000-row import (ten columns, short remarks) measured
# 5.3-9.4 MB unpacked, 260,000-340,000 elements, a compression ratio of 4-8 (21 when every
# row is alike): each bound below is several times that, and a 10 MB upload of real text
# does not unpack past them. (bench/import_bombs.py measures all this.)
MAX_XLSX_MEMBERS = 1_000  # a workbook has ten or twenty parts; a few hundred with images
MAX_XLSX_UNPACKED_BYTES = 100 * 1024 * 1024
MAX_XLSX_PART_BYTES = 50 * 1024 * 1024  # any one part: a sheet, the shared strings
MAX_XLSX_RATIO = 100
# A part under this holds at most 65,536 elements (`<a/>`, the least, takes four bytes):
# cheap, whatever its ratio.
_RATIO_CHECKED_FROM = 256 * 1024
# Elements in all the parts together (start tags, counted on the unpacked bytes). The dearest
# file it admits, all shared strings, takes 8 s: five times a real 10,000-row file.
MAX_XLSX_ELEMENTS = 1_000_000
_UNPACK_CHUNK = 1024 * 1024
_CENTRAL_DIRECTORY_ENTRY = b"PK\x01\x02"
# Columns read per row; a sheet formatted out to column XFD would otherwise pad every row.
MAX_COLUMNS = 64
# Row errors listed in the response; the message still counts them all.
MAX_REPORTED_ERRORS = 500
_REPORTED_VALUE_LENGTH = 100
# Bound parameters per INSERT (a row's columns times its rows): under both databases' limits
# (32,767 for PostgreSQL's protocol and for SQLite since 3.32).
_INSERT_PARAMETERS = 30_000
_LOOKUP_CHUNK = 1_000
_NUMBER_TRIES = 5
# What a spreadsheet may run as a formula when a cell starts with it (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"
_ZIP_MAGIC = b"PK\x03\x04"


# One import at a time in the process: parsing a workbook holds its rows and shared strings
# (hundreds of MB for the worst a bound lets through), and a second one beside it doubles
# that and splits the CPU, which the event loop shares through the GIL.
_import_running = threading.Lock()
IMPORT_RETRY_AFTER_SECONDS = 5  # a 10,000-row import takes 2-4 s


def take_import_slot() -> Callable[[], None]:
    """Take the process's one import slot, for work that outlives the request that starts
    it (a confirmed import in the background); its release. A 429 while another holds it."""
    if not _import_running.acquire(blocking=False):
        raise RateLimited(
            "已有导入正在进行，请稍后再试",
            headers={"Retry-After": str(IMPORT_RETRY_AFTER_SECONDS)},
        )
    return _import_running.release


@contextmanager
def import_slot() -> Iterator[None]:
    """Hold the process's one import slot; a 429 while another import holds it."""
    release = take_import_slot()
    try:
        yield
    finally:
        release()


class FileFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


MEDIA_TYPES = {
    FileFormat.csv: "text/csv; charset=utf-8",
    FileFormat.xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class Column:
    header: str  # what staff see in the spreadsheet
    key: str  # the API's name, also accepted as a header
    max_length: int

    @property
    def field(self) -> str:
        """The customer's attribute (and the forms' Python name) the column holds."""
        return "remark" if self.key == "remarks" else to_snake(self.key)


def _household(header: str, field: str) -> Column:
    """A column of the 家政 record, as long as the forms take it (a number or a date: 32)."""
    lengths = [
        m.max_length for m in HouseholdIn.model_fields[field].metadata if isinstance(m, MaxLen)
    ]
    return Column(header, to_camel(field), lengths[0] if lengths else 32)


# The columns an import reads, in the template's (and the export's) order.
IMPORT_COLUMNS = (
    Column("姓名", "name", 64),
    Column("手机号", "phone", 32),
    Column("微信号", "wechatId", 64),
    _household("身份证号", "id_card_number"),
    Column("线索来源", "leadSource", 32),
    Column("服务类别", "serviceCategory", 32),
    Column("签约状态", "contractStatus", 16),
    Column("线索等级", "leadLevel", 8),
    Column("负责人", "owner", 64),  # an advisor's username
    Column("地址", "address", 255),
    _household("地区", "area"),
    _household("薪资预算", "salary_budget"),
    _household("期望上户日期", "expected_start_date"),
    _household("预产期", "expected_delivery_date"),
    _household("家庭面积", "home_area"),
    _household("家庭人口", "family_size"),
    _household("休息方式", "rest_schedule"),
    _household("服务天数", "service_days"),
    _household("年龄要求", "age_requirement"),
    _household("性别要求", "gender_requirement"),
    _household("籍贯要求", "origin_requirement"),
    _household("学历要求", "education_requirement"),
    _household("成交金额", "deal_amount"),
    Column("备注", "remarks", 2000),
    # The mini program's older need card, kept as typed.
    _household("需求-订单类型", "need_order_type"),
    _household("需求-工作时间", "need_working_hours"),
    _household("需求-薪资", "need_salary"),
    _household("需求-休息时间", "need_rest_time"),
    _household("需求-家庭成员", "need_family_members"),
    _household("需求-服务地址", "need_service_address"),
    _household("需求-房屋面积", "need_house_area"),
    _household("需求-工作内容", "need_work_content"),
    _household("需求-备注", "need_remarks"),
    _household("需求-服务周期", "need_service_period"),
    _household("需求-上户时间", "need_onboarding_time"),
)
_COLUMNS = {column.key: column for column in IMPORT_COLUMNS}
_ORDER = {column.key: index for index, column in enumerate(IMPORT_COLUMNS)}
_HEADER_KEYS = (
    {column.header: column.key for column in IMPORT_COLUMNS}
    | {column.key.casefold(): column.key for column in IMPORT_COLUMNS}
    | {"remark": "remarks", "notes": "remarks", "servicetype": "serviceCategory"}
)
# The 家政 columns, checked by the forms' own rules (HouseholdIn): key -> Python name.
_HOUSEHOLD = {
    column.key: column.field for column in IMPORT_COLUMNS if column.field in HOUSEHOLD_FIELDS
}
_NEED_CARD = tuple(key for key in _HOUSEHOLD if key.startswith("need"))
_DATE_KEYS = ("expectedStartDate", "expectedDeliveryDate")
# A date as Excel writes it into a CSV (2026/12/1), or as people type it (2026年12月1日).
_LOOSE_DATE = re.compile(
    r"(\d{4})\s*[/.年-]\s*(\d{1,2})\s*[/.月-]\s*(\d{1,2})\s*日?(?:\s+0?0:00(?::00)?)?"
)

EXPORT_HEADERS = (
    "客户编号",
    *(column.header for column in IMPORT_COLUMNS),
    "创建时间",
    "最后跟进时间",
)


# -- reading a file ------------------------------------------------------------------------


@dataclass(frozen=True)
class SheetRow:
    number: int  # the spreadsheet's row number: the first line is 1
    values: dict[str, str]  # column key -> the cell as text, stripped


@dataclass(frozen=True)
class Sheet:
    rows: list[SheetRow]
    # Where the run of blank rows that ended the sheet starts: nothing after it was read.
    blank_run_from: int | None = None

    def note(self) -> str:
        """What the import's message says of the rows not read ('' if none were skipped)."""
        if self.blank_run_from is None:
            return ""
        return (
            f"（第 {self.blank_run_from} 行起连续 {BLANK_RUN_ENDS_SHEET} 行为空，"
            "视为表格结束，其后的行未读取）"
        )


def file_format(filename: str) -> FileFormat:
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    try:
        return FileFormat(extension)
    except ValueError:
        raise BadRequest("不支持的文件格式，请上传 .csv 或 .xlsx 文件") from None


def read_sheet(filename: str, content: bytes) -> Sheet:
    """The data rows of an uploaded CSV or XLSX, by column key; a 400 for an unusable file."""
    kind = file_format(filename)
    if not content:
        raise BadRequest("文件为空")
    if len(content) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"文件过大，最大允许 {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
    if kind is FileFormat.csv:
        return _csv_records(content)
    return _xlsx_records(content)


def _csv_records(content: bytes) -> Sheet:
    if content.startswith(_ZIP_MAGIC) or content.startswith(_XLS_MAGIC):
        raise BadRequest("文件内容不是 CSV（是否是 Excel 文件？请使用 .xlsx 扩展名）")
    text = _decode(content)
    if "\x00" in text:  # no text file holds one, and PostgreSQL cannot store it
        raise BadRequest("文件内容不是 CSV 文本（包含空字符）")
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    try:
        return _records(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as error:
        raise BadRequest(f"CSV 文件格式错误：{error}") from error


def _decode(content: bytes) -> str:
    # UTF-8 (with or without the BOM Excel adds), else GB18030: a superset of the GBK that
    # Excel on Chinese Windows writes. A GBK file is almost never valid UTF-8.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BadRequest("无法识别文件编码，请将 CSV 保存为 UTF-8 或 GBK 编码")


_CORRUPT_XLSX = "无法读取 XLSX 文件：文件已损坏或不是 Excel 工作簿"


def _xlsx_records(content: bytes) -> Sheet:
    if content.startswith(_XLS_MAGIC):
        raise BadRequest("不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 后再导入")
    _check_xlsx_archive(content)
    try:
        # openpyxl warns about features it drops (data validation, default styles):
        # nothing an import needs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
            try:
                if not workbook.worksheets:
                    raise BadRequest("XLSX 文件中没有工作表")
                sheet = workbook.worksheets[0]
                # Read-only mode trusts the size the file declares, and would drop the rows
                # past a wrong one (or pad up to a huge one): every row there is counts.
                sheet.reset_dimensions()
                return _records(sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True))
            finally:
                workbook.close()
    except AppError:
        raise
    except Exception as error:  # whatever a damaged file makes the parser raise, lazily too
        raise BadRequest(_CORRUPT_XLSX) from error


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"


def _check_xlsx_archive(content: bytes) -> None:
    """Refuse, before any XML is parsed, a workbook that would cost far more to read than a
    real import: too many parts, too many bytes or XML elements unpacked, or a compression
    ratio no spreadsheet has."""
    # Every entry zipfile would parse starts with this signature: counted in C, before
    # zipfile spends Python time on each of a hundred thousand tiny entries.
    if content.count(_CENTRAL_DIRECTORY_ENTRY) > MAX_XLSX_MEMBERS:
        raise BadRequest(f"XLSX 文件包含的部件过多（最多 {MAX_XLSX_MEMBERS} 个），不是正常的工作簿")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            entries = archive.infolist()
            # Sizes are what the entries declare, and zipfile holds each one to them: it
            # unpacks no byte past `file_size`, and reads `compress_size` from the upload.
            if sum(entry.compress_size for entry in entries) > len(content):
                raise BadRequest(_CORRUPT_XLSX)
            unpacked = sum(entry.file_size for entry in entries)
            if unpacked > MAX_XLSX_UNPACKED_BYTES:
                raise PayloadTooLarge(
                    f"XLSX 文件解压后过大（{_mb(unpacked)}，最多 "
                    f"{_mb(MAX_XLSX_UNPACKED_BYTES)}），请拆分后再导入"
                )
            for entry in entries:
                _check_part_size(entry)
            elements = 0
            for entry in entries:
                elements += _xml_elements(archive, entry, MAX_XLSX_ELEMENTS - elements)
                if elements > MAX_XLSX_ELEMENTS:
                    raise PayloadTooLarge(
                        f"XLSX 文件内容过多（超过 {MAX_XLSX_ELEMENTS} 个 XML 元素），"
                        "请删除多余的行、列或工作表，或拆分后再导入"
                    )
    except AppError:
        raise
    except Exception as error:  # zipfile's, zlib's, lzma's … errors for a damaged archive
        raise BadRequest(_CORRUPT_XLSX) from error


def _check_part_size(entry: zipfile.ZipInfo) -> None:
    if entry.file_size > MAX_XLSX_PART_BYTES:
        raise PayloadTooLarge(
            f"XLSX 文件中有一个部件解压后过大（{_mb(entry.file_size)}，最多 "
            f"{_mb(MAX_XLSX_PART_BYTES)}），请拆分后再导入"
        )
    if (
        entry.file_size > _RATIO_CHECKED_FROM
        and entry.file_size > MAX_XLSX_RATIO * entry.compress_size
    ):
        ratio = entry.file_size // max(entry.compress_size, 1)
        raise BadRequest(
            f"XLSX 文件异常：其中一个部件解压后是压缩时的 {ratio} 倍"
            f"（正常的表格不超过 {MAX_XLSX_RATIO} 倍），已拒绝导入"
        )


def _xml_elements(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, budget: int) -> int:
    """About how many XML elements `entry` holds (its start tags), counting up to just past
    `budget`. Any part counts: the content types may declare a sheet under any name."""
    count = 0
    with archive.open(entry) as part:
        while count <= budget and (chunk := part.read(_UNPACK_CHUNK)):
            count += chunk.count(b"<") - chunk.count(b"</")
    return count


class _Lines:
    """A sheet's non-blank rows, numbered, until a run of blank rows ends it."""

    def __init__(self, rows: Iterable[Sequence[Any]]) -> None:
        self._rows = rows
        self.blank_run_from: int | None = None

    def __iter__(self) -> Iterator[tuple[int, Sequence[Any]]]:
        blank_from: int | None = None
        for number, cells in enumerate(self._rows, start=1):
            if number > MAX_SHEET_ROWS:
                raise BadRequest(
                    f"表格超过 {MAX_SHEET_ROWS} 行（含空行）：一次最多导入 {MAX_IMPORT_ROWS} "
                    "行客户数据，请删除多余的空行或拆分文件"
                )
            if any(_cell_text(cell) for cell in cells[:MAX_COLUMNS]):
                blank_from = None
                yield number, cells
                continue
            if blank_from is None:
                blank_from = number
            if number - blank_from + 1 == BLANK_RUN_ENDS_SHEET:
                # Stopping here also stops openpyxl's parse: it reads the sheet as we go.
                self.blank_run_from = blank_from
                return


def _records(rows: Iterable[Sequence[Any]]) -> Sheet:
    """The header is the first non-blank row; data rows follow, blank ones skipped, up to
    a run of BLANK_RUN_ENDS_SHEET blank rows."""
    lines = _Lines(rows)
    numbered = iter(lines)
    first = next(numbered, None)
    if first is None:
        raise BadRequest(f"文件为空：没有表头和数据{Sheet([], lines.blank_run_from).note()}")
    header = [_cell_text(cell) for cell in first[1][:MAX_COLUMNS]]
    columns: dict[str, int] = {}
    for index, title in enumerate(header):
        title = title.rstrip("*＊").strip()  # a template may mark required columns with *
        key = _HEADER_KEYS.get(title) or _HEADER_KEYS.get(title.casefold())
        if key is None:
            continue  # other columns (an export's 客户编号, 创建时间 …) are left alone
        if key in columns:
            raise BadRequest(f"表头中“{_COLUMNS[key].header}”列重复")
        columns[key] = index
    if not columns:
        names = "、".join(column.header for column in IMPORT_COLUMNS[:4])
        raise BadRequest(f"没有识别到表头：第一行应为列名，如 {names} 等（见导入模板）")
    if "name" not in columns:
        raise BadRequest("缺少必需的列：姓名")
    if "phone" not in columns and "wechatId" not in columns:
        raise BadRequest("缺少必需的列：手机号或微信号")

    records: list[SheetRow] = []
    for number, cells in numbered:
        values = {
            key: _cell_text(cells[index]) if index < len(cells) else ""
            for key, index in columns.items()
        }
        if not any(values.values()):
            continue
        if len(records) == MAX_IMPORT_ROWS:
            raise BadRequest(f"一次最多导入 {MAX_IMPORT_ROWS} 行客户数据，请拆分文件")
        records.append(SheetRow(number, values))
    sheet = Sheet(records, lines.blank_run_from)
    if not records:
        raise BadRequest(f"文件中没有客户数据（只有表头）{sheet.note()}")
    return sheet


def _cell_text(value: Any) -> str:
    """A cell as text: numbers as their digits (a phone typed into Excel is a number), an
    Excel date as 2026-12-01 (with its time, if it has one)."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, datetime):
        text = value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    else:
        text = str(value)  # a date's is 2026-12-01 already
    text = text.strip()
    # Undo the quote an export puts before a would-be formula: import(export) is lossless.
    if len(text) > 1 and text[0] == "'" and text[1] in _FORMULA_STARTS:
        text = text[1:]
    return text


# -- importing -----------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, row: SheetRow, key: str, message: str) -> None:
        self.items.append(
            {
                "row": row.number,
                "field": key,
                "column": _COLUMNS[key].header,
                "value": row.values.get(key, "")[:_REPORTED_VALUE_LENGTH],
                "message": message,
            }
        )

    def listed(self) -> list[dict[str, Any]]:
        """The problems in row and column order, as many as a report lists."""
        self.items.sort(key=lambda item: (item["row"], _ORDER[item["field"]]))
        return self.items[:MAX_REPORTED_ERRORS]

    def rows(self) -> int:
        return len({item["row"] for item in self.items})

    def raise_if_any(self) -> None:
        if not self.items:
            return
        message = f"导入失败：{self.rows()} 行数据有误（共 {len(self.items)} 处），未导入任何客户"
        if len(self.items) > MAX_REPORTED_ERRORS:
            message += f"；仅列出前 {MAX_REPORTED_ERRORS} 处"
        raise ValidationFailed(message, self.listed())


# Told how many rows of the stage are done, every PROGRESS_EVERY rows and at its end.
Progress = Callable[[ImportStage, int], Awaitable[None]]
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class CheckReport:
    """What the import would say of a file, found without writing anything."""

    rows: int  # data rows read
    problems: list[dict[str, Any]]  # {row, field, column, value, message}, the first 500
    problem_count: int
    bad_rows: int
    note: str = ""  # of rows not read after a run of blank ones

    @property
    def ok_rows(self) -> int:
        return self.rows - self.bad_rows

    @property
    def clean(self) -> bool:
        return self.problem_count == 0


@dataclass
class _Checked:
    """The rows' problems and, for the rows without any, what their INSERT needs."""

    problems: _Problems
    phones: dict[int, str]  # row number -> normalised phone, for the rows that have one
    households: dict[int, dict[str, Any]]  # row number -> its checked 家政 fields
    owners: dict[str, str]  # username -> id of the named owners who are active advisors

    def report(self, sheet: Sheet) -> CheckReport:
        return CheckReport(
            rows=len(sheet.rows),
            problems=self.problems.listed(),
            problem_count=len(self.problems.items),
            bad_rows=self.problems.rows(),
            note=sheet.note(),
        )


async def import_file(
    session: AsyncSession,
    settings: Settings,
    user: User,
    filename: str,
    read: Callable[[], Awaitable[bytes]],
) -> tuple[int, Sheet]:
    """Import an uploaded file: read, parsed off the event loop, and imported, all while
    holding the import slot (one file in memory at a time). The count and the sheet read."""
    with import_slot():
        content = await read()
        sheet = await run_in_threadpool(read_sheet, filename, content)
        count = await import_rows(session, settings, user, sheet.rows)
    return count, sheet


async def check_file(
    session: AsyncSession, settings: Settings, filename: str, content: bytes
) -> CheckReport:
    """What importing this file would find wrong, row by row, without writing anything:
    the import's own reading and checks (`check_rows`), database conflicts included. An
    unusable file is still refused as the import refuses it (400, 413)."""
    with import_slot():
        sheet = await run_in_threadpool(read_sheet, filename, content)
        checked = await check_rows(session, settings, sheet.rows)
    return checked.report(sheet)


async def import_rows(
    session: AsyncSession,
    settings: Settings,
    importer: User,
    rows: Sequence[SheetRow],
    *,
    progress: Progress | None = None,
) -> int:
    """Insert every row as a customer, or none: any bad row fails the whole file.

    `progress` hears of the rows checked, before the session runs any statement, then of
    the rows written inside its transaction."""
    checked = await check_rows(session, settings, rows, progress=progress)
    checked.problems.raise_if_any()

    now = utcnow()
    numbers: set[str] = set()
    values = []
    for row in rows:
        owner_id = checked.owners.get(row.values.get("owner", ""))
        contract_status = row.values.get("contractStatus") or DEFAULT_CONTRACT_STATUS
        record = {
            "id": new_id(),
            "customer_no": _fresh_number(numbers),
            "name": row.values["name"],
            "phone": checked.phones.get(row.number),
            "phone_verified": False,
            "wechat_id": row.values.get("wechatId") or None,
            "lead_source": row.values.get("leadSource") or DEFAULT_LEAD_SOURCE,
            "service_category": row.values.get("serviceCategory") or None,
            "contract_status": contract_status,
            "lead_level": row.values.get("leadLevel") or None,
            "address": row.values.get("address") or None,
            "remark": row.values.get("remarks") or None,
            **_NO_HOUSEHOLD,
            "is_frozen": False,
            "owner_id": owner_id,
            "assigned_at": now if owner_id else None,
            "assigned_by_id": importer.id if owner_id else None,
            "created_by_id": importer.id,
            "last_updated_by_id": importer.id,
            # Unowned customers go to the public pool, as a manager's new customer does.
            "pool_entered_at": None if owner_id else now,
            "signed_at": now if contract_status == SIGNED else None,
            "created_at": now,
            "updated_at": now,
        }
        household = checked.households[row.number]
        if household:
            record.update(household)
            if any(row.values.get(key) for key in _NEED_CARD):
                record.update(need_card_values(settings, record))
        values.append(record)
    await _insert(session, values, numbers, progress)
    return len(values)


async def check_rows(
    session: AsyncSession,
    settings: Settings,
    rows: Sequence[SheetRow],
    *,
    progress: Progress | None = None,
) -> _Checked:
    """Every rule a row must pass to be imported, for the import and for its check alike:
    the cells (lengths, lists, phone, the 家政 fields by the forms' rules), repeats within
    the file, and what the database already holds (phones, WeChat ids, owners). Reads only.

    The cells are checked before the first statement: a caller's progress report may write
    in a session of its own meanwhile, even on SQLite."""
    problems = _Problems()
    lists = {
        "leadSource": settings.lead_sources,
        "serviceCategory": settings.service_categories,
        "contractStatus": settings.contract_statuses,
        "leadLevel": settings.lead_levels,
    }
    phones: dict[int, str] = {}
    first_row_of: dict[str, int] = {}
    first_row_of_wechat: dict[str, int] = {}
    households: dict[int, dict[str, Any]] = {}
    for done, row in enumerate(rows, start=1):
        too_long: set[str] = set()
        for key, value in row.values.items():
            column = _COLUMNS[key]
            if len(value) > column.max_length:
                too_long.add(key)
                problems.add(row, key, f"{column.header}不能超过 {column.max_length} 个字符")
        if not row.values.get("name"):
            problems.add(row, "name", "姓名不能为空")
        raw_phone = row.values.get("phone", "")
        wechat_id = row.values.get("wechatId", "")
        phone = normalize_phone(raw_phone) if raw_phone else None
        if not raw_phone:
            if not wechat_id:
                problems.add(row, "phone", MISSING_CONTACT)
        elif phone is None:
            problems.add(row, "phone", "手机号格式不正确（需为中国大陆11位手机号）")
        elif phone in first_row_of:
            problems.add(row, "phone", f"手机号与第 {first_row_of[phone]} 行重复")
        else:
            first_row_of[phone] = row.number
            phones[row.number] = phone
        if wechat_id and "wechatId" not in too_long:
            if wechat_id in first_row_of_wechat:
                first = first_row_of_wechat[wechat_id]
                problems.add(row, "wechatId", f"微信号与第 {first} 行重复")
            else:
                first_row_of_wechat[wechat_id] = row.number
        for key, allowed in lists.items():
            value = row.values.get(key, "")
            if value and value not in allowed:
                header = _COLUMNS[key].header
                problems.add(row, key, f"{header}必须是 {'、'.join(allowed)} 之一")
        households[row.number] = _household_fields(row, too_long, problems)
        if progress is not None and (done % PROGRESS_EVERY == 0 or done == len(rows)):
            await progress(ImportStage.checking, done)

    if session.get_bind().dialect.name == "postgresql":
        # Right after a bulk import, before autovacuum has analysed the table, PostgreSQL
        # switches the repeated `phone IN (…1,000 parameters)` lookup to a generic plan that
        # scans every row against every parameter: 5 s and growing by the 10,000 rows
        # (measured). Custom plans see the values as constants and hash them.
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    taken = await _taken(session, Customer.phone, list(first_row_of))
    taken_wechat = await _taken(session, Customer.wechat_id, list(first_row_of_wechat))
    owners = await _active_owners(
        session, {r.values["owner"] for r in rows if r.values.get("owner")}
    )
    for row in rows:
        existing = taken.get(phones.get(row.number, ""))
        if existing is not None:
            problems.add(row, "phone", f"手机号已存在（客户 {existing}）")
        existing = taken_wechat.get(row.values.get("wechatId", ""))
        if existing is not None:
            problems.add(row, "wechatId", f"微信号已存在（客户 {existing}）")
        owner = row.values.get("owner")
        if owner and owner not in owners:
            problems.add(row, "owner", f"负责人“{owner}”不是在职顾问的用户名")
    return _Checked(problems, phones, households, owners)


# Every 家政 column of an imported customer, empty: the INSERT's rows all have the same keys.
_NO_HOUSEHOLD: dict[str, Any] = dict.fromkeys(HOUSEHOLD_FIELDS)


def _household_fields(row: SheetRow, too_long: set[str], problems: _Problems) -> dict[str, Any]:
    """The row's filled 家政 cells, checked and converted by the forms' own rules (by Python
    name); a problem for each that fails. Cells already too long are not checked again."""
    cells = {
        field: value
        for key, field in _HOUSEHOLD.items()
        if (value := row.values.get(key)) and key not in too_long
    }
    if not cells:
        return {}
    for key in _DATE_KEYS:
        field = _HOUSEHOLD[key]
        if field in cells and (loose := _LOOSE_DATE.fullmatch(cells[field])):
            year, month, day = loose.groups()
            cells[field] = f"{year}-{month.zfill(2)}-{day.zfill(2)}"
    try:
        return HouseholdIn.model_validate(cells).model_dump(exclude_unset=True)
    except ValidationError as error:
        for detail in validation_details(error.errors()):
            problems.add(row, to_camel(detail["field"]), detail["message"])
        return {}


def _fresh_number(used: set[str]) -> str:
    while True:
        number = new_customer_number()
        if number not in used:
            used.add(number)
            return number


async def _taken(session: AsyncSession, column: Any, wanted: list[str]) -> dict[str, str]:
    """Value -> customer number of the customers whose `column` (phone, WeChat id) already
    holds one of `wanted`."""
    found: dict[str, str] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        result = await session.execute(
            select(column, Customer.customer_no).where(column.in_(chunk))
        )
        found.update({value: number for value, number in result.all() if value})
    return found


async def _active_owners(session: AsyncSession, usernames: set[str]) -> dict[str, str]:
    """Username -> id of the active advisors among `usernames` (only advisors own customers,
    as in assignment)."""
    if not usernames:
        return {}
    result = await session.execute(
        select(User.username, User.id).where(
            User.username.in_(usernames), User.is_active, User.role == Role.advisor.value
        )
    )
    return dict(result.all())


async def _insert(
    session: AsyncSession,
    values: list[dict[str, Any]],
    used: set[str],
    progress: Progress | None = None,
) -> None:
    """Set-based INSERTs in chunks; a row whose customer number is taken draws another."""
    statement = (
        dialect_insert(session, Customer)
        .on_conflict_do_nothing(index_elements=["customer_no"])
        .returning(Customer.customer_no)
    )
    pending = values
    chunk_size = _INSERT_PARAMETERS // max(len(values[0]), 1) if values else 1
    written = 0
    for _ in range(_NUMBER_TRIES):
        missed: list[dict[str, Any]] = []
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start : start + chunk_size]
            try:
                inserted = set((await session.execute(statement, chunk)).scalars())
            except IntegrityError as error:
                # Checked above, so another request has just added one of these phones or
                # WeChat ids (or deactivated and removed an owner): still all or nothing.
                raise Conflict(
                    "导入时数据已被其他操作修改（如手机号或微信号刚被录入），请重新导入"
                ) from error
            missed += [row for row in chunk if row["customer_no"] not in inserted]
            written += len(inserted)
            if progress is not None:
                await progress(ImportStage.writing, written)
        if not missed:
            return
        for row in missed:
            row["customer_no"] = _fresh_number(used)
        pending = missed
    raise RuntimeError("no free customer numbers after several tries")


# -- exporting -----------------------------------------------------------------------------


async def export_rows(
    session: AsyncSession, user: User, filters: CustomerFilters
) -> Sequence[Row[Any]]:
    """The customers `user` may see under `filters`, newest first, as the export's cells."""
    owner = aliased(User)
    cells = [
        owner.username if column.key == "owner" else getattr(Customer, column.field)
        for column in IMPORT_COLUMNS
    ]
    query = (
        select(Customer.customer_no, *cells, Customer.created_at, Customer.last_follow_up_at)
        .outerjoin(owner, owner.id == Customer.owner_id)
        .order_by(Customer.created_at.desc(), Customer.id.desc())
    )
    result: Result[Any] = await session.execute(filtered(query, user, filters))
    return result.all()


async def export_file(
    session: AsyncSession, user: User, filters: CustomerFilters, kind: FileFormat
) -> bytes:
    """The export's file: the rows read, the file built off the event loop."""
    rows = await export_rows(session, user, filters)
    return await run_in_threadpool(build_export, rows, kind)


def build_export(rows: Sequence[Sequence[Any]], kind: FileFormat) -> bytes:
    return _build(EXPORT_HEADERS, rows, kind)


def build_template(settings: Settings, kind: FileFormat) -> bytes:
    """The import's headers and one example row that imports as it is."""

    def first(options: list[str], preferred: str = "") -> str:
        return preferred if preferred in options else (options[0] if options else "")

    example = {
        "name": "张三",
        "phone": "13800138000",
        "wechatId": "zhangsan_wx",
        "leadSource": first(settings.lead_sources),
        "serviceCategory": first(settings.service_categories),
        "contractStatus": first(settings.contract_statuses, DEFAULT_CONTRACT_STATUS),
        "leadLevel": first(settings.lead_levels, "A类"),
        "address": "杭州市西湖区文三路 100 号",
        "area": "西湖区",
        "salaryBudget": "8000",
        "expectedStartDate": "2026-12-01",
        "homeArea": "120",
        "familySize": "4",
        "restSchedule": REST_SCHEDULES[0],
        "serviceDays": "26",
        "ageRequirement": "45岁以下",
        "genderRequirement": "女",
        "originRequirement": "不限",
        "educationRequirement": "初中",
        "remarks": "手机号、微信号至少填一项；负责人（顾问用户名）留空则进入公海",
    }
    row = [example.get(column.key, "") for column in IMPORT_COLUMNS]
    return _build([column.header for column in IMPORT_COLUMNS], [row], kind)


def _build(headers: Sequence[str], rows: Sequence[Sequence[Any]], kind: FileFormat) -> bytes:
    texts = ([_cell(value) for value in row] for row in rows)
    if kind is FileFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(headers)
        writer.writerows(texts)
        # With a BOM, Excel reads the file as UTF-8 rather than the system's code page.
        return buffer.getvalue().encode("utf-8-sig")
    return _xlsx(headers, texts, len(rows))


_SHEET_PART = "xl/worksheets/sheet1.xml"
_ROWS_PER_WRITE = 5_000


def _xlsx(headers: Sequence[str], rows: Iterable[list[str]], count: int) -> bytes:
    """A workbook of one sheet, every cell a string.

    openpyxl writes the package (content types, workbook, styles) and the header row; the
    data rows are spliced into its sheet in the very XML openpyxl writes for a string cell.
    openpyxl's per-cell writer took 18-22 s for an export of 100,000 rows (9 s even with
    lxml), and holds the GIL all that time; these few lines take about a tenth of that.
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("客户列表")
    sheet.append(list(headers))
    skeleton = io.BytesIO()
    workbook.save(skeleton)
    letters = [get_column_letter(index) for index in range(1, len(headers) + 1)]
    out = io.BytesIO()
    with (
        zipfile.ZipFile(skeleton) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename != _SHEET_PART:
                target.writestr(entry, data, zipfile.ZIP_DEFLATED)
                continue
            head, end, tail = data.decode().partition("</sheetData>")
            if not end:
                raise RuntimeError("openpyxl wrote a sheet without sheetData")
            # The sheet's size up front spares a reader (openpyxl's too) a pass to find it.
            dimension = f'<dimension ref="A1:{letters[-1]}{count + 1}"/><sheetViews>'
            head = head.replace("<sheetViews>", dimension, 1)
            with target.open(_SHEET_PART, "w") as part:
                part.write(head.encode())
                batch: list[str] = []
                for number, row in enumerate(rows, start=2):
                    batch.append(_xlsx_row(number, row, letters))
                    if len(batch) == _ROWS_PER_WRITE:
                        part.write("".join(batch).encode())
                        batch.clear()
                part.write("".join(batch).encode())
                part.write((end + tail).encode())
    return out.getvalue()


def _xlsx_row(number: int, row: list[str], letters: list[str]) -> str:
    cells = "".join(
        f'<c r="{letter}{number}" t="inlineStr"><is><t xml:space="preserve">'
        f"{_xml_text(text)}</t></is></c>"
        for letter, text in zip(letters, row, strict=True)
        if text
    )
    return f'<row r="{number}">{cells}</row>'


def _xml_text(text: str) -> str:
    return text.translate(_XML_ESCAPES)


# What a string cell's XML text needs: markup escaped, a carriage return kept (a parser
# would drop a bare one), control characters dropped (XML cannot hold them at all).
_XML_ESCAPES: dict[int, str | None] = {
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord("\r"): "&#13;",
} | dict.fromkeys((*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        # Text in the company's local time: spreadsheets have no time zones.
        return value.astimezone(clock.SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an amount of 16800.0 yuan reads 16800
    text = str(value)
    # A leading quote keeps a spreadsheet from running the cell as a formula.
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text
