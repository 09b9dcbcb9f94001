"""What reading an XLSX import costs: real 10,000-row files against the bombs of
tests/customers/test_import_bombs.py.

    .venv/bin/python -m bench.import_bombs [--src DIR]

Each file is read by `transfer_service.read_sheet` (what the import does before touching
the database) in a fresh process, which prints the CPU seconds it took, how far its peak
RSS rose (Linux's VmHWM), and what it answered. `--src DIR` puts DIR first on that
process's path: point it at another checkout's `src/` to measure that code on the same
files.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from openpyxl import Workbook
from tests.customers.test_import_bombs import (
    data_row,
    empty_rows_bomb,
    many_shared_strings,
    numbered_empty_rows,
    shared_strings_bomb,
    workbook,
)

from wxcrm.customers.transfer.service import EXPORT_HEADERS, FileFormat, build_export

_CHILD = """
import json, sys, time
from wxcrm.customers.transfer import service as transfer_service

def peak_kb():  # this process's own high-water mark: getrusage's survives exec
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status["VmHWM"].split()[0])

content = open(sys.argv[1], "rb").read()
before = peak_kb()
started = time.process_time()
try:
    sheet = transfer_service.read_sheet("a.xlsx", content)
    rows = sheet if isinstance(sheet, list) else sheet.rows
    answer = f"{len(rows)} rows"
except Exception as error:
    status = getattr(error, "status_code", 500)
    answer = f"{status} {getattr(error, 'message', repr(error))[:60]}"
cpu = time.process_time() - started
print(json.dumps({"cpu": cpu, "rss_mb": (peak_kb() - before) / 1024, "answer": answer}))
"""

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"


def _customers(count: int) -> list[list[str]]:
    """Rows like a real import's: short names, phones, the lists' values, an address and a
    remark of up to 60 characters."""
    rng = random.Random(1)

    def text(length: int) -> str:
        return "".join(rng.choice(_SURNAMES + _GIVEN) for _ in range(length))

    return [
        [
            rng.choice(_SURNAMES) + text(rng.randint(1, 2)),
            f"13{rng.randint(0, 9)}{rng.randint(10**7, 10**8 - 1)}",
            rng.choice(["美团", "抖音", "小红书", "官网", "其他"]),
            rng.choice(["月嫂", "保洁", "住家育儿嫂"]),
            rng.choice(["待定", "匹配中", "已签约"]),
            rng.choice(["A类", "B类", "C类"]),
            f"杭州市西湖区{text(4)}路{rng.randint(1, 999)}号",
            text(rng.randint(0, 60)),
            f"wx_{rng.randint(10**5, 10**9)}",
            "",
        ]
        for _ in range(count)
    ]


def real_workbook() -> bytes:
    """10,000 customers as openpyxl writes them, phones typed as numbers."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["姓名", "手机号", "线索来源", "服务类别", "签约状态", "线索等级", "地址", "备注"])
    for row in _customers(10_000):
        sheet.append([row[0], int(row[1]), *row[2:8]])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def real_export() -> bytes:
    """10,000 customers as our own export writes them (every export column, the 家政 ones
    empty; inline strings)."""
    headers = ("姓名", "手机号", "线索来源", "服务类别", "签约状态", "线索等级", "地址", "备注")
    headers += ("微信号", "负责人")
    rows = []
    for row in _customers(10_000):
        cells = dict(zip(headers, row, strict=True))
        cells |= {"客户编号": "CUS00000000001", "创建时间": "2025-01-01 09:00:00"}
        rows.append([cells.get(header, "") for header in EXPORT_HEADERS])
    return build_export(rows, FileFormat.xlsx)


def most_rows_allowed() -> bytes:
    """As many empty numbered rows as the element bound lets through, in a sheet that does
    not declare its size: openpyxl parses all of them once to find it."""
    count = 990_000
    rows = "".join(f'<row r="{n}"/>' for n in range(2, count + 2)).encode()
    return workbook([rows, data_row(count + 2, "张三", "13800138000")])


def most_strings_allowed() -> bytes:
    """As many distinct shared strings as the element bound lets through (two elements
    each), all loaded by openpyxl before the first row: the dearest file a bound admits."""
    strings = "".join(f"<si><t>{n}</t></si>" for n in range(495_000)).encode()
    return workbook([data_row(2, "张三", "13800138000")], [strings])


FILES: dict[str, Callable[[], bytes]] = {
    "real: 10,000 rows (openpyxl)": real_workbook,
    "real: 10,000 rows (our export)": real_export,
    "bomb: 1,000,000 empty <row/>": empty_rows_bomb,
    "bomb: 500,000 numbered empty rows": numbered_empty_rows,
    "bomb: 150 MB of empty shared strings": shared_strings_bomb,
    "bomb: 600,000 shared strings": many_shared_strings,
    "worst let through: 990,000 rows, no size": most_rows_allowed,
    "worst let through: 495,000 strings": most_strings_allowed,
}


def _unpacked(content: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return sum(entry.file_size for entry in archive.infolist())


def measure(content: bytes, src: str | None) -> dict[str, object]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    with tempfile.NamedTemporaryFile(suffix=".xlsx") as file:
        file.write(content)
        file.flush()
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, file.name],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", help="a src/ directory to import wxcrm from instead")
    args = parser.parse_args()
    print(f"wxcrm from {Path(args.src).resolve() if args.src else 'this checkout'}")
    print(f"{'file':42} {'upload':>9} {'unpacked':>9} {'CPU s':>7} {'+RSS MB':>8}  answer")
    for name, build in FILES.items():
        content = build()
        result = measure(content, args.src)
        print(
            f"{name:42} {len(content) / 1024:8.0f}K {_unpacked(content) / 2**20:8.1f}M "
            f"{result['cpu']:7.2f} {result['rss_mb']:8.0f}  {result['answer']}"
        )


if __name__ == "__main__":
    main()
