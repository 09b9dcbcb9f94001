"""客户列表's actions in Chromium: ticked rows assigned or released in a batch, one row assigned,
released or deleted, the export of the filtered list; who may do what, refusals beside their
field, CSRF, and names that are markup shown as text."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from playwright.async_api import Download, Page, Request, expect

from tests.console.conftest import XSS_NAME, Console
from tests.live import staff_token
from wxcrm.console.customers import _back_params, _read_query
from wxcrm.users.models import Role, User

# Every group of customers is found by its own search word: the tests share one server.
GROUPS = {
    "batch": ("批量甲", "advisor1", 3, "13510000"),
    "release": ("释放乙", "advisor1", 2, "13520000"),
    "row": ("单行丙", "advisor1", 1, "13530000"),
    "delete": ("删除丁", "advisor1", 2, "13540000"),
    "advisor": ("顾问戊", "advisor1", 2, "13550000"),
    "export": ("导出己", "advisor1", 3, "13560000"),
    "mixed": ("混合庚", "guessed", 1, "13570000"),
}


@pytest.fixture(scope="module")
async def ids(console: Console) -> AsyncIterator[dict[str, list[str]]]:
    """Customers made through the API, by group: {group: [id, …]}."""
    made: dict[str, list[str]] = {}
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        tokens: dict[str, str] = {}

        async def add(username: str, body: dict[str, Any]) -> str:
            if username not in tokens:
                tokens[username] = await staff_token(http, username)
            response = await http.post(
                "/api/customers",
                json=body,
                headers={"Authorization": f"Bearer {tokens[username]}"},
            )
            assert response.status_code == 200, response.text
            return str(response.json()["data"]["_id"])

        for group, (word, owner, count, phone) in GROUPS.items():
            made[group] = [
                await add(owner, {"name": f"{word}{n}", "phone": f"{phone}{n:03d}"})
                for n in range(1, count + 1)
            ]
        # One of another advisor's customers, named as markup, among the mixed group.
        made["mixed"].append(await add("advisor1", {"name": XSS_NAME, "phone": "13570000999",
                                                     "remarks": "混合庚"}))  # fmt: skip
        # A signed customer in the export group that another advisor holds.
        made["export"].append(await add("guessed", {"name": "导出己别人", "phone": "13560000999",
                                                     "contractStatus": "已签约"}))  # fmt: skip
    yield made


async def owners(console: Console, customer_ids: list[str]) -> list[str | None]:
    """Each customer's owner id, read through the API as a manager."""
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, "manager1")
        found = []
        for customer_id in customer_ids:
            response = await http.get(
                f"/api/customers/{customer_id}", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            found.append(data.get("assignedTo") or None)
        return found


def rows(page: Page) -> Any:
    return page.locator(".data-table tbody tr")


def toast(page: Page) -> Any:
    return page.locator(".toast-item")


async def test_a_manager_batch_assigns_ticked_rows(
    console: Console, ids: dict[str, list[str]], page: Page
) -> None:
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/customers?keyword=批量甲&sortOrder=asc")
    await expect(rows(page)).to_have_count(3)
    bar = page.locator(".batch-bar")
    await expect(bar).to_be_hidden()
    await page.get_by_label("全选本页客户").check()
    await expect(bar).to_be_visible()
    await expect(bar.locator("[data-selected-count]")).to_have_text("3")
    await page.get_by_label("选择 批量甲2", exact=True).uncheck()
    await expect(bar.locator("[data-selected-count]")).to_have_text("2")
    await console.screenshot(page, "customers-batch-bar-1280")
    await bar.get_by_role("button", name="批量分配").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("heading")).to_have_text("批量分配客户")
    # No advisor chosen: told beside the field, the dialog stays open, nothing moves.
    await dialog.get_by_role("button", name="确定分配").click()
    advisor = dialog.get_by_label("分配给顾问")
    await expect(dialog.locator("#batch-assign-dialog-assignedTo-error")).to_have_text(
        "请选择要分配给的顾问"
    )
    await expect(advisor).to_have_attribute("aria-invalid", "true")
    await expect(dialog).to_contain_text("已选 2 个客户")
    await console.screenshot(page, "customers-assign-dialog-1280")
    assert await owners(console, ids["batch"]) == [await owner_id(console, "advisor1")] * 3
    await advisor.select_option(label="guessed")
    await dialog.get_by_label("分配原因（选填）").fill("周末加班")
    await dialog.get_by_role("button", name="确定分配").click()
    await expect(toast(page)).to_have_text("已分配 2 个客户给 guessed")
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await expect(page).to_have_url(re.compile(r"keyword=%E6%89%B9%E9%87%8F%E7%94%B2"))
    await expect(page).to_have_url(re.compile(r"sortOrder=asc"))
    await expect(rows(page)).to_have_count(3)
    await expect(rows(page).nth(0)).to_contain_text("guessed")
    await expect(rows(page).nth(1)).to_contain_text("advisor1")
    await expect(rows(page).nth(2)).to_contain_text("guessed")
    await expect(page.locator(".batch-bar")).to_be_hidden()


async def owner_id(console: Console, username: str) -> str:
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, username)
        response = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        return str(response.json()["data"]["_id"])


async def test_a_batch_release_needs_a_reason(
    console: Console, ids: dict[str, list[str]], page: Page
) -> None:
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/customers?keyword=释放乙")
    await expect(rows(page)).to_have_count(2)
    await page.get_by_label("全选本页客户").check()
    await page.locator(".batch-bar").get_by_role("button", name="批量释放").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_role("button", name="确定释放").click()
    reason = dialog.get_by_label("释放原因")
    await expect(dialog.locator("#batch-release-dialog-reason-error")).to_have_text(
        "请填写释放原因"
    )
    await expect(reason).to_have_attribute("aria-describedby", "batch-release-dialog-reason-error")
    await expect(reason).to_be_focused()
    assert None not in await owners(console, ids["release"])
    await reason.fill("客户暂无需求")
    await dialog.get_by_role("button", name="确定释放").click()
    await expect(toast(page)).to_have_text("已释放 2 个客户到公海")
    await expect(rows(page)).to_have_count(2)
    for n in range(2):
        await expect(rows(page).nth(n)).to_contain_text("公海")
        released = rows(page).nth(n).get_by_role("button", name=re.compile("^释放 "))
        await expect(released).to_have_count(0)
    assert await owners(console, ids["release"]) == [None, None]


async def test_a_manager_assigns_one_row_found_by_part_of_its_phone(
    console: Console, ids: dict[str, list[str]], page: Page
) -> None:
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/customers")
    await page.get_by_label("搜索").fill("3530 0000")
    await page.get_by_role("button", name="查询").click()
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("单行丙1")
    await page.get_by_role("button", name="分配 单行丙1").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading")).to_have_text("分配客户")
    await expect(dialog).to_contain_text("客户：单行丙1")
    # Already this advisor's: the service's refusal, in the dialog; nothing changed.
    await dialog.get_by_label("分配给顾问").select_option(label="advisor1")
    await dialog.get_by_role("button", name="确定分配").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("没有客户被分配")
    await expect(dialog.get_by_role("alert")).to_contain_text("单行丙1")
    await expect(dialog.get_by_role("alert")).to_contain_text("客户已分配给该顾问")
    await expect(dialog).to_contain_text("客户：单行丙1")
    await dialog.get_by_label("分配给顾问").select_option(label="guessed")
    await dialog.get_by_role("button", name="确定分配").click()
    await expect(toast(page)).to_have_text("已分配 1 个客户给 guessed")
    await expect(page).to_have_url(re.compile(r"keyword=35300000"))
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("guessed")
    assert await owners(console, ids["row"]) == [await owner_id(console, "guessed")]


async def test_a_partly_refused_batch_names_each_refused_customer_as_text(
    console: Console, ids: dict[str, list[str]], page: Page
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await console.sign_in(page, "manager1")
    # guessed's 混合庚1 and advisor1's customer named as markup, both to guessed.
    await page.goto(f"{console.url}/customers?keyword=1357000")
    await expect(rows(page)).to_have_count(2)
    await expect(page.get_by_label(f"选择 {XSS_NAME}")).to_have_count(1)
    await page.get_by_label("全选本页客户").check()
    await page.locator(".batch-bar").get_by_role("button", name="批量分配").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("分配给顾问").select_option(label="guessed")
    await dialog.get_by_role("button", name="确定分配").click()
    report = page.locator(".batch-report")
    await expect(report).to_contain_text("分配完成：成功 1 个，失败 1 个。")
    await expect(report.locator("li")).to_have_count(1)
    await expect(report.locator("li")).to_contain_text("混合庚1（CUS")
    await expect(report.locator("li")).to_contain_text("客户已分配给该顾问")
    await expect(page).to_have_url(re.compile(r"/customers\?keyword=1357000$"))
    await expect(rows(page).filter(has_text=XSS_NAME)).to_contain_text("guessed")
    await expect(rows(page).filter(has_text=XSS_NAME).locator(".name")).to_have_text(XSS_NAME)
    # The row dialog shows the name filled in as text.
    await page.get_by_role("button", name=f"分配 {XSS_NAME}").click()
    await expect(page.get_by_role("dialog")).to_contain_text(f"客户：{XSS_NAME}")
    assert await page.locator("img").count() == 0
    assert dialogs == []


async def test_an_admin_deletes_a_row(
    console: Console, ids: dict[str, list[str]], page: Page
) -> None:
    await console.sign_in(page, "admin1")
    await page.goto(f"{console.url}/customers?keyword=删除丁")
    await expect(rows(page)).to_have_count(2)
    asked: list[str] = []

    async def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await page.get_by_role("button", name="删除 删除丁1").click()
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("删除丁2")
    await expect(page).to_have_url(re.compile(r"keyword=%E5%88%A0%E9%99%A4%E4%B8%81"))
    assert asked == ["确定删除客户“删除丁1”吗？删除后不能恢复。"]
    deleted, kept = ids["delete"]
    assert await status_of(console, deleted) == 404
    # Declining the question deletes nothing: no request is sent, the customer is still there.
    posted: list[str] = []
    declined: list[str] = []

    def sent(request: Request) -> None:
        if request.method != "GET":
            posted.append(f"{request.method} {request.url}")

    async def decline(dialog: Any) -> None:
        declined.append(dialog.message)
        await dialog.dismiss()

    page.on("request", sent)
    page.once("dialog", decline)
    await page.get_by_role("button", name="删除 删除丁2").click()
    await page.reload()
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("删除丁2")
    assert declined == ["确定删除客户“删除丁2”吗？删除后不能恢复。"]
    assert posted == []
    assert await status_of(console, kept) == 200


async def status_of(console: Console, customer_id: str) -> int:
    """What the API answers for the customer, asked as an admin: 200 there, 404 gone."""
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, "admin1")
        response = await http.get(
            f"/api/customers/{customer_id}", headers={"Authorization": f"Bearer {token}"}
        )
        return response.status_code


async def test_a_manager_has_no_delete_on_a_row(
    console: Console, ids: dict[str, list[str]], page: Page
) -> None:
    """Deleting is the admin's: a manager's rows offer 分配 and 释放, not 删除."""
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/customers?keyword=导出己")
    await expect(rows(page)).to_have_count(4)
    for n in range(1, 4):
        row = rows(page).filter(has_text=f"导出己{n}")
        await expect(row.get_by_role("button", name=f"分配 导出己{n}")).to_be_visible()
        await expect(row.get_by_role("button", name=f"释放 导出己{n}")).to_be_visible()
    await expect(page.get_by_role("button", name=re.compile("^删除 "))).to_have_count(0)
    await expect(page.locator('form[action$="/delete"]')).to_have_count(0)


async def test_an_advisor_releases_its_own_but_may_not_assign(
    console: Console, ids: dict[str, list[str]], page: Page
) -> None:
    await console.sign_in(page, "advisor1")
    await page.goto(f"{console.url}/customers?keyword=顾问戊")
    await expect(rows(page)).to_have_count(2)
    await page.get_by_label("全选本页客户").check()
    bar = page.locator(".batch-bar")
    await expect(bar).to_be_visible()
    await expect(bar.get_by_role("button", name="批量释放")).to_be_visible()
    await expect(bar.get_by_role("button", name="批量分配")).to_have_count(0)
    await expect(page.get_by_role("button", name=re.compile("^(分配|删除) "))).to_have_count(0)
    await expect(page.locator("#batch-assign-dialog, #row-assign-dialog")).to_have_count(0)
    # The page does not offer it, and the server refuses it all the same (as the API: 403).
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    advisor = await owner_id(console, "advisor1")
    refused = await page.request.post(
        f"{console.url}/customers/batch-assign",
        form={"ids": ids["advisor"][0], "assignedTo": advisor, "csrf_token": token},
    )
    assert refused.status == 403
    assert "没有权限" in await refused.text()
    # Its own customer back to the pool: gone from its list.
    await page.get_by_label("选择 顾问戊1", exact=True).uncheck()
    await page.get_by_role("button", name="释放 顾问戊1").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading")).to_have_text("释放到公海")
    await dialog.get_by_label("释放原因").fill("联系不上")
    await dialog.get_by_role("button", name="确定释放").click()
    await expect(toast(page)).to_have_text("已释放 1 个客户到公海")
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("顾问戊2")
    assert await owners(console, ids["advisor"]) == [None, advisor]
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.goto(f"{console.url}/customers")
    await expect(page.get_by_role("heading", name="客户列表")).to_be_visible()
    await console.screenshot(page, "customers-list-768")


async def test_the_export_holds_exactly_the_filtered_customers(
    console: Console, ids: dict[str, list[str]], page: Page
) -> None:
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/customers")
    await page.get_by_label("搜索").fill("导出己")
    await page.get_by_role("button", name="查询").click()
    await expect(rows(page)).to_have_count(4)
    async with page.expect_download() as csv_download:
        await page.get_by_role("link", name="导出 CSV").click()
    download = await csv_download.value
    assert download.suggested_filename.startswith("客户列表-")
    assert download.suggested_filename.endswith(".csv")
    text = (await download_bytes(download)).decode("utf-8-sig")
    names = sorted(row["姓名"] for row in csv.DictReader(io.StringIO(text)))
    assert names == ["导出己1", "导出己2", "导出己3", "导出己别人"]
    # The list narrowed by status: the Excel file narrows with it.
    await page.get_by_label("签约状态").select_option("已签约")
    await page.get_by_role("button", name="查询").click()
    await expect(rows(page)).to_have_count(1)
    async with page.expect_download() as xlsx_download:
        await page.get_by_role("link", name="导出 Excel").click()
    sheet = load_workbook(io.BytesIO(await download_bytes(await xlsx_download.value))).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    name_column = values[0].index("姓名")
    assert [row[name_column] for row in values[1:]] == ["导出己别人"]
    # An advisor's export is its own customers only.
    await console.sign_in(page, "advisor1")
    await page.goto(f"{console.url}/customers?keyword=导出己")
    await expect(rows(page)).to_have_count(3)
    async with page.expect_download() as own_download:
        await page.get_by_role("link", name="导出 CSV").click()
    own = (await download_bytes(await own_download.value)).decode("utf-8-sig")
    assert sorted(row["姓名"] for row in csv.DictReader(io.StringIO(own))) == [
        "导出己1",
        "导出己2",
        "导出己3",
    ]
    # Bad filters: the list with its messages, not a file.
    response = await page.goto(f"{console.url}/customers/export?format=csv&leadLevel=Z")
    assert response is not None and response.status == 400
    await expect(page.locator("#leadLevel-error")).to_have_text("请从列表中选择")
    response = await page.goto(f"{console.url}/customers/export?format=pdf")
    assert response is not None and response.status == 400
    await expect(page.locator(".batch-report")).to_have_text("导出格式应为 CSV 或 Excel（xlsx）")


async def download_bytes(download: Download) -> bytes:
    path = await download.path()
    assert path is not None
    return await asyncio.to_thread(path.read_bytes)


async def test_a_post_without_its_csrf_token_is_refused(
    console: Console, ids: dict[str, list[str]], page: Page
) -> None:
    await console.sign_in(page, "manager1")
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    target = ids["export"][:1]
    before = await owners(console, target)
    guessed = await owner_id(console, "guessed")
    async with httpx.AsyncClient(base_url=console.url, cookies=cookies, timeout=10) as http:
        assign = await http.post(
            "/customers/batch-assign", data={"ids": target, "assignedTo": guessed}
        )
        release = await http.post("/customers/batch-release", data={"ids": target, "reason": "无"})
    assert assign.status_code == release.status_code == 403
    assert "CSRF" in assign.text
    assert await owners(console, target) == before


async def test_a_plain_form_refused_shows_the_list_with_its_dialog_open(
    console: Console, ids: dict[str, list[str]], page: Page
) -> None:
    """Without htmx the refused form comes back as the whole list, the dialog open on it and
    the rows still ticked; and the list it goes back to is only ever a /customers URL."""
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/customers")
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    target = ids["export"][:2]
    async with httpx.AsyncClient(base_url=console.url, cookies=cookies, timeout=10) as http:
        refused = await http.post(
            "/customers/batch-release",
            data={"ids": target, "reason": "  ", "csrf_token": token,
                  "back": "/customers?keyword=导出己"},
        )  # fmt: skip
        done = await http.post(
            "/customers/batch-assign",
            data={"ids": target[:1], "assignedTo": await owner_id(console, "advisor1"),
                  "csrf_token": token, "back": "https://evil.example/customers?x=1"},
        )  # fmt: skip
    assert refused.status_code == 400
    assert '<dialog id="batch-release-dialog"' in refused.text
    assert "data-open-on-load" in refused.text
    assert "请填写释放原因" in refused.text
    assert refused.text.count(" checked>") == 2
    # Already advisor1's: refused by the service, nothing moved; a bad `back` is ignored.
    assert done.status_code == 409
    assert "客户已分配给该顾问" in done.text
    assert 'name="back" value="/customers"' in done.text
    assert None not in await owners(console, target)


def test_the_list_an_action_returns_to_is_a_customers_url() -> None:
    assert _back_params("/customers?keyword=%E7%8E%8B&page=2") == {"keyword": "王", "page": "2"}
    for elsewhere in ("https://evil.example/customers?a=1", "//evil.example/customers",
                      "/staff?a=1", "/customers/abc?a=1"):  # fmt: skip
        assert _back_params(elsewhere) == {}


def test_the_export_link_carries_the_filters_but_not_the_page() -> None:
    params = {"keyword": "王", "leadLevel": "A类", "page": "3", "limit": "50", "sortOrder": "asc"}
    query = _read_query(params, User(role=Role.manager.value))
    url = query.export_url("xlsx")
    assert url.startswith("/customers/export?format=xlsx&")
    assert "keyword=%E7%8E%8B" in url and "leadLevel=A%E7%B1%BB" in url
    assert "page" not in url and "limit" not in url and "sort" not in url
