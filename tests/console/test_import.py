"""导入导出 in Chromium: a manager downloads the template, uploads a file with one bad row
(sees the row, nothing written), fixes it and imports it; the import is confirmed once,
by its uploader only; progress is polled; export by filter; advisors are refused."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select, update

from tests.console.conftest import XSS_NAME, Console, assert_fits_a_tablet
from tests.live import create_staff, staff_token
from wxcrm.core.db import Database
from wxcrm.core.models import utcnow
from wxcrm.customers.transfer.models import PendingImport
from wxcrm.customers.transfer.service import MAX_IMPORT_BYTES
from wxcrm.users.models import User

FORMAT_ERROR = "手机号格式不正确（需为中国大陆11位手机号）"


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def upload_file(name: str, content: bytes) -> dict[str, Any]:
    return {"name": name, "mimeType": "text/csv", "buffer": content}


async def customer_total(console: Console, **filters: str) -> int:
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, "manager1")
        response = await http.get(
            "/api/customers", params=filters, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        return int(response.json()["data"]["total"])


async def csrf(page: Page) -> str:
    return await page.locator('meta[name="csrf-token"]').get_attribute("content") or ""


async def upload(page: Page, name: str, content: bytes) -> None:
    await page.get_by_label("客户文件").set_input_files(upload_file(name, content))
    await page.get_by_role("button", name="上传并检查").click()


@pytest.fixture
async def served_database(console: Console) -> AsyncIterator[Database]:
    """The served app's own database, for what a test cannot bring about in a browser (an
    import caught mid-way)."""
    database = Database.from_url(console.env["DATABASE_URL"])
    try:
        yield database
    finally:
        await database.dispose()


async def test_a_manager_imports_a_file_after_fixing_its_one_bad_row(
    console: Console, page: Page
) -> None:
    alerts: list[str] = []
    page.on("dialog", lambda dialog: alerts.append(dialog.message))
    await console.sign_in(page, "manager1")
    await page.locator('a[data-menu="transfer"]').click()
    await expect(page.get_by_role("heading", name="导入导出", exact=True)).to_be_visible()
    await expect(page).to_have_url(f"{console.url}/import")
    await console.screenshot(page, "import-1280")

    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="CSV 模板").click()
    download = await downloading.value
    assert download.suggested_filename == "客户导入模板.csv"
    path = await download.path()
    template = csv_rows(path.read_bytes())
    header = template[0]
    assert header[:3] == ["姓名", "手机号", "微信号"] and len(template) == 2

    def row(name: str, phone: str) -> list[str]:
        return [name, phone, *[""] * (len(header) - 2)]

    good = [row("导入一号", "13811110001"), row("导入二号", "13811110002")]
    bad = row(XSS_NAME, XSS_NAME)  # the fourth line of the file
    before = await customer_total(console)

    await upload(page, "客户.csv", csv_bytes([header, *good, bad, row("导入四号", "13811110004")]))
    report = page.locator(".import-report")
    await expect(report.get_by_role("heading")).to_have_text("检查结果：客户.csv")
    await expect(report.locator(".import-summary")).to_contain_text("读取4 行")
    await expect(report.locator(".import-summary")).to_contain_text("无误3 行")
    problem = report.locator("tbody tr")
    await expect(problem).to_have_count(1)
    await expect(problem.locator("td")).to_have_text(["第 4 行", "手机号", XSS_NAME, FORMAT_ERROR])
    await expect(report.get_by_role("alert")).to_contain_text("请按下表修改文件后重新上传")
    await expect(page.get_by_role("button", name=re.compile("确认导入"))).to_have_count(0)
    assert await page.locator('img[src="x"]').count() == 0
    assert alerts == []
    assert await customer_total(console) == before
    await console.screenshot(page, "import-report-bad-row-1280")

    fixed = row(XSS_NAME, "13811110003")
    await upload(
        page, "客户.csv", csv_bytes([header, *good, fixed, row("导入四号", "13811110004")])
    )
    await expect(page).to_have_url(re.compile(r"/import/[0-9a-f]{24}$"))
    await expect(page.locator(".import-status .notice")).to_contain_text("检查通过")
    assert await customer_total(console) == before  # checked, still nothing written
    await page.get_by_role("button", name="确认导入 4 个客户").click()
    status = page.locator(".import-status")
    await expect(status.locator("progress")).to_be_visible()
    await expect(status.get_by_role("status")).to_have_text("导入成功：共 4 个客户")
    await expect(page.get_by_role("button", name=re.compile("确认导入"))).to_have_count(0)
    await console.screenshot(page, "import-progress-or-done-1280")
    assert await customer_total(console) == before + 4

    await status.get_by_role("link", name="查看客户列表").click()
    await expect(page.get_by_role("heading", name="客户列表")).to_be_visible()
    await page.get_by_label("搜索").fill("1381111")
    await page.get_by_role("button", name="查询").click()
    await expect(page.locator(".data-table tbody tr")).to_have_count(4)
    await expect(page.locator(".data-table tbody")).to_contain_text(XSS_NAME)
    assert alerts == []


async def test_the_import_page_polls_its_progress_until_the_import_ends(
    console: Console, page: Page, served_database: Database
) -> None:
    """An import caught mid-way (set in the database): the page shows its stage and rows
    and follows it by polling, without a reload, to its end."""
    async with served_database.writer() as session:
        manager_id = await session.scalar(select(User.id).where(User.username == "manager1"))
        running = PendingImport(
            created_by_id=manager_id, filename="大文件.xlsx", content=b"", row_count=2000,
            status="importing", stage="checking", rows_done=500, heartbeat_at=utcnow(),
        )  # fmt: skip
        session.add(running)
        await session.commit()

    async def move(**values: Any) -> None:
        async with served_database.writer() as session:
            await session.execute(
                update(PendingImport).where(PendingImport.id == running.id).values(**values)
            )
            await session.commit()

    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/import/{running.id}")
    status = page.locator(".import-status")
    await expect(status.get_by_role("status")).to_have_text("正在检查：500 / 2000 行")
    await expect(status.locator("progress")).to_have_attribute("value", "500")
    await console.screenshot(page, "import-progress-1280")
    await move(stage="writing", rows_done=1500, heartbeat_at=utcnow())
    await expect(status.get_by_role("status")).to_have_text("正在写入：1500 / 2000 行")
    finished = "导入成功：共 2000 个客户"
    await move(status="done", stage=None, rows_done=2000, imported=2000, message=finished)
    await expect(status.get_by_role("status")).to_have_text(finished)
    await expect(status.get_by_role("link", name="查看客户列表")).to_be_visible()

    # A process that died mid-import leaves its heartbeat behind: shown failed, not hanging.
    await move(status="importing", stage="writing", heartbeat_at=utcnow() - timedelta(minutes=3))
    await page.reload()
    await expect(status.get_by_role("alert")).to_contain_text("导入中断")
    await expect(status.get_by_role("alert")).to_contain_text("未导入任何客户")


async def test_an_upload_is_confirmed_once_and_only_by_its_uploader(
    console: Console, page: Page, browser: Browser
) -> None:
    await create_staff(console.env, "manager2", "manager")
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/import")
    content = csv_bytes([["姓名", "手机号"], ["一次性", "13822220001"]])
    await upload(page, "once.csv", content)
    await expect(page).to_have_url(re.compile(r"/import/[0-9a-f]{24}$"))
    confirm_url = page.url + "/confirm"
    before = await customer_total(console)

    # Not without this session's CSRF token.
    refused = await page.request.post(confirm_url, form={"other": "x"})
    assert refused.status == 403
    assert "CSRF" in await refused.text()
    refused = await page.request.post(
        f"{console.url}/import", multipart={"file": upload_file("x.csv", content)}
    )
    assert refused.status == 403

    # Not by another manager, who does not even learn that it exists.
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        other = await context.new_page()
        await console.sign_in(other, "manager2")
        token = await csrf(other)
        response = await other.goto(page.url)
        assert response is not None and response.status == 404
        await expect(other.get_by_role("alert")).to_contain_text("导入记录不存在或已过期")
        refused = await other.request.post(confirm_url, form={"csrf_token": token})
        assert refused.status == 404
    finally:
        await context.close()
    assert await customer_total(console) == before

    await page.get_by_role("button", name="确认导入 1 个客户").click()
    await expect(page.locator(".import-status").get_by_role("status")).to_have_text(
        "导入成功：共 1 个客户"
    )
    again = await page.request.post(confirm_url, form={"csrf_token": await csrf(page)})
    assert again.status == 409
    assert "该文件已确认导入，不能重复导入" in await again.text()
    assert await customer_total(console) == before + 1


async def test_an_unusable_file_is_refused_beside_the_file_field(
    console: Console, page: Page
) -> None:
    await console.sign_in(page, "admin1")  # admins import too
    await page.locator('a[data-menu="transfer"]').click()  # transfer.js runs after htmx's swap
    await expect(page.get_by_role("heading", name="导入导出", exact=True)).to_be_visible()
    field = page.get_by_label("客户文件")
    error = page.locator("#import-file-error")
    before = await customer_total(console)

    await page.get_by_role("button", name="上传并检查").click()  # no file chosen
    await expect(error).to_have_text("请选择要导入的文件（.csv 或 .xlsx）")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await upload(page, "客户.txt", b"name,phone\n")
    await expect(error).to_have_text("不支持的文件格式，请上传 .csv 或 .xlsx 文件")
    await upload(page, "empty.csv", b"")
    await expect(error).to_have_text("文件为空，请选择填好客户数据的文件")
    await upload(page, "header-only.csv", csv_bytes([["姓名", "手机号"]]))
    await expect(error).to_contain_text("文件中没有客户数据")
    await expect(field).to_have_attribute("aria-describedby", "import-file-hint import-file-error")

    # Over the limit: refused in the page before a byte is sent.
    oversize = b"x" * (MAX_IMPORT_BYTES + 1)
    await page.get_by_label("客户文件").set_input_files(upload_file("big.csv", oversize))
    await page.get_by_role("button", name="上传并检查").click()
    await expect(error).to_have_text("文件过大，最大允许 10 MB，请拆分后再导入")

    # The upload's progress, as htmx reports it while the file is sent.
    form = page.locator("[data-upload-form]")
    await form.evaluate(
        """form => form.dispatchEvent(new CustomEvent("htmx:xhr:progress", {bubbles: true,
             detail: {lengthComputable: true, loaded: 512, total: 1024}}))"""
    )
    await expect(form.locator("[data-upload-percent]")).to_have_text("上传中 50%")
    await expect(form.get_by_label("上传进度")).to_have_attribute("value", "50")

    # Each refusal is a 400 a script can see, and nothing is kept or written.
    token = await csrf(page)
    for name, content in [("客户.txt", b"a"), ("empty.csv", b"")]:
        refused = await page.request.post(
            f"{console.url}/import",
            multipart={"csrf_token": token, "file": upload_file(name, content)},
        )
        assert refused.status == 400
    missing = await page.request.post(f"{console.url}/import", multipart={"csrf_token": token})
    assert missing.status == 400
    assert "请选择要导入的文件" in await missing.text()
    # A NUL in a file name (PostgreSQL stores none) is refused before the upload is read.
    good = csv_bytes([["姓名", "手机号"], ["王阿姨", "13812345678"]])
    nul = await page.request.post(
        f"{console.url}/import",
        multipart={"csrf_token": token, "file": upload_file("客户\x00.csv", good)},
    )
    assert nul.status == 400
    assert "不能包含空字符" in await nul.text()
    assert await customer_total(console) == before


async def test_the_server_refuses_a_file_over_the_limit_beside_the_field(
    console: Console, page: Page
) -> None:
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/import")
    refused = await page.request.post(
        f"{console.url}/import",
        multipart={
            "csrf_token": await csrf(page),
            "file": upload_file("big.csv", b"x" * (MAX_IMPORT_BYTES + 1)),
        },
    )
    assert refused.status == 400
    assert "文件过大，最大允许 10 MB" in await refused.text()


async def test_a_manager_exports_customers_by_filter(console: Console, page: Page) -> None:
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, "manager1")
        for name, phone, source in [
            ("导出甲", "13833330001", "抖音"),
            ("导出乙", "13833330002", "转介绍"),
        ]:
            response = await http.post(
                "/api/customers",
                json={"name": name, "phone": phone, "leadSource": source},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/import")
    export = page.locator(".transfer-export")
    await export.get_by_label("线索来源").select_option("抖音")
    async with page.expect_download() as downloading:
        await export.get_by_role("button", name="导出 CSV").click()
    download = await downloading.value
    assert re.fullmatch(r"客户列表-\d{8}\.csv", download.suggested_filename)
    rows = csv_rows((await download.path()).read_bytes())
    names = {line[1] for line in rows[1:]}
    assert "导出甲" in names and "导出乙" not in names
    assert {line[5] for line in rows[1:]} == {"抖音"}

    async with page.expect_download() as downloading:
        await export.get_by_role("button", name="导出 Excel").click()
    download = await downloading.value
    assert download.suggested_filename.endswith(".xlsx")
    assert (await download.path()).read_bytes()[:2] == b"PK"

    # A bad date is shown beside its field, with a 400, and nothing downloads.
    response = await page.goto(f"{console.url}/import/export?createdFrom=2024-13-01&format=csv")
    assert response is not None and response.status == 400
    date_from = page.get_by_label("创建日期从")
    await expect(date_from).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#x-createdFrom-error")).to_have_text("日期格式应为 2024-01-31")

    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.goto(f"{console.url}/import")
    await expect(page.get_by_role("heading", name="导出客户")).to_be_visible()
    await console.screenshot(page, "import-768")


async def test_the_import_page_fits_a_tablet(console: Console, page: Page) -> None:
    """At 768 px the page does not scroll sideways (a table may, inside its own box)."""
    await console.sign_in(page, "manager1")
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.goto(f"{console.url}/import")
    await expect(page.get_by_role("heading", name="导出客户")).to_be_visible()
    await assert_fits_a_tablet(page)


async def test_an_advisor_may_not_import_or_export_here(console: Console, page: Page) -> None:
    await console.sign_in(page, "advisor1")
    await expect(page.locator('a[data-menu="transfer"]')).to_have_count(0)
    for path in ("/import", "/import/template?format=csv", "/import/export?format=csv"):
        response = await page.goto(f"{console.url}{path}")
        assert response is not None and response.status == 403, path
        await expect(page.get_by_role("alert")).to_contain_text("只有经理和管理员可以导入导出客户")
    await page.goto(f"{console.url}/")
    refused = await page.request.post(
        f"{console.url}/import",
        multipart={
            "csrf_token": await csrf(page),
            "file": upload_file("a.csv", csv_bytes([["姓名", "手机号"], ["甲", "13844440001"]])),
        },
    )
    assert refused.status == 403
