"""客户列表 in Chromium: search by a phone fragment, filters kept in the URL, pages, an
advisor's own customers only, and a name that is markup shown as text."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.console.conftest import XSS_NAME, Console, assert_fits_a_tablet
from tests.live import staff_token
from wxcrm.core import clock

# advisor1's customers: one signed, one named as markup, and enough plain ones for two pages.
PLAIN = 22
ADVISOR_TOTAL = PLAIN + 2
OTHER_ADVISOR = "xss"


@pytest.fixture(scope="module")
async def customers(console: Console) -> AsyncIterator[None]:
    """Customers made through the API: advisor1's own, and one of another advisor."""
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:

        async def add(username: str, body: dict[str, Any]) -> None:
            token = await staff_token(http, username)
            response = await http.post(
                "/api/customers", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text

        await add("advisor1", {"name": "王阿姨", "phone": "13800138000",
                               "contractStatus": "已签约", "serviceCategory": "月嫂",
                               "leadLevel": "A类"})  # fmt: skip
        await add("advisor1", {"name": XSS_NAME, "phone": "13700000001"})
        for number in range(PLAIN):
            await add("advisor1", {"name": f"客户{number:02d}", "phone": f"1390000{number:04d}"})
        await add(OTHER_ADVISOR, {"name": "李女士", "phone": "13600136000",
                                  "contractStatus": "签约中"})  # fmt: skip
    yield


def rows(page: Page) -> Any:
    return page.locator(".data-table tbody tr")


async def test_a_manager_finds_a_customer_by_part_of_its_phone(
    console: Console, customers: None, page: Page
) -> None:
    await console.sign_in(page, "manager1")
    await page.get_by_role("link", name="客户", exact=True).click()
    await expect(page.get_by_role("heading", name="客户列表")).to_be_visible()
    await expect(page.get_by_role("link", name="新建客户")).to_have_attribute(
        "href", "/customers/new"
    )
    await expect(page.locator(".pagination .total")).to_have_text(f"共 {ADVISOR_TOTAL + 1} 条")
    await console.screenshot(page, "customers-manager-1280")
    await page.get_by_label("搜索").fill("0013 8")
    await page.get_by_role("button", name="查询").click()
    await expect(rows(page)).to_have_count(1)
    row = rows(page).first
    await expect(row).to_contain_text("王阿姨")
    await expect(row.locator(".phone")).to_have_text("138 0013 8000")
    await expect(row.locator(".tag")).to_have_text("已签约")
    # The name opens the record; the row's actions sit at its right end.
    await expect(row.get_by_role("link", name="王阿姨", exact=True)).to_have_attribute(
        "href", re.compile(r"^/customers/[0-9a-f]{24}$")
    )
    await expect(row.get_by_role("link", name="跟进 王阿姨")).to_have_attribute(
        "href", re.compile(r"^/customers/[0-9a-f]{24}#follow-up$")
    )
    await expect(row).to_contain_text("advisor1")
    await expect(row).to_contain_text(re.compile(r"20\d\d-\d\d-\d\d \d\d:\d\d"))
    await expect(page).to_have_url(re.compile(r"keyword=0013"))
    await expect(page.locator(".pagination .total")).to_have_text("共 1 条")
    await page.get_by_label("搜索").fill("没有这个人")
    await page.get_by_role("button", name="查询").click()
    await expect(page.locator(".empty")).to_contain_text("没有符合条件的客户")


async def test_a_status_filter_lives_in_the_url(
    console: Console, customers: None, page: Page
) -> None:
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/customers")
    await page.get_by_label("签约状态").select_option("签约中")
    await page.get_by_role("button", name="查询").click()
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("李女士")
    await expect(page).to_have_url(re.compile(r"contractStatus=%E7%AD%BE%E7%BA%A6%E4%B8%AD"))
    await page.reload()
    await expect(page.get_by_label("签约状态")).to_have_value("签约中")
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("李女士")
    await page.get_by_role("link", name="重置").click()
    await expect(page.get_by_label("签约状态")).to_have_value("")
    await expect(page.locator(".pagination .total")).to_have_text(f"共 {ADVISOR_TOTAL + 1} 条")


async def test_pages_and_page_size(console: Console, customers: None, page: Page) -> None:
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/customers")
    await expect(rows(page)).to_have_count(20)
    first_page = await rows(page).first.inner_text()
    await page.get_by_role("link", name="下一页").click()
    await expect(page).to_have_url(re.compile(r"page=2"))
    await expect(rows(page)).to_have_count(ADVISOR_TOTAL + 1 - 20)
    assert await rows(page).first.inner_text() != first_page
    await page.reload()
    await expect(rows(page)).to_have_count(ADVISOR_TOTAL + 1 - 20)
    await page.get_by_label("每页").select_option("50")
    await expect(page).to_have_url(re.compile(r"limit=50"))
    await expect(rows(page)).to_have_count(ADVISOR_TOTAL + 1)
    await expect(page.get_by_role("link", name="下一页")).to_have_count(0)


async def test_an_advisor_sees_only_its_own(console: Console, customers: None, page: Page) -> None:
    await console.sign_in(page, "advisor1")
    await page.goto(f"{console.url}/customers?limit=50")
    await expect(page.locator(".pagination .total")).to_have_text(f"共 {ADVISOR_TOTAL} 条")
    await expect(page.get_by_text("李女士")).to_have_count(0)
    await expect(page.get_by_label("负责人")).to_have_count(0)
    # Another advisor's customer stays out of reach by search too.
    await page.goto(f"{console.url}/customers?keyword=13600136000")
    await expect(page.locator(".empty")).to_contain_text("没有符合条件的客户")
    await console.screenshot(page, "customers-advisor-1280")


async def test_a_customer_named_as_markup_shows_as_text(
    console: Console, customers: None, page: Page
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/customers?keyword=13700000001")
    await expect(rows(page).first.locator(".name")).to_have_text(XSS_NAME)
    assert await page.locator(".data-table img").count() == 0
    assert dialogs == []


async def test_a_bad_filter_value_is_told_beside_its_field(
    console: Console, customers: None, page: Page
) -> None:
    await console.sign_in(page, "manager1")
    response = await page.goto(f"{console.url}/customers?createdFrom=2024-13-01&leadLevel=Z")
    assert response is not None and response.status == 400
    await expect(page.locator("#createdFrom-error")).to_have_text("日期格式应为 2024-01-31")
    await expect(page.locator("#leadLevel-error")).to_have_text("请从列表中选择")
    await expect(page.get_by_role("alert")).to_contain_text("筛选条件有误")


async def test_each_filter_narrows_the_list_and_the_sort_turns_it(
    console: Console, customers: None, page: Page
) -> None:
    await console.sign_in(page, "manager1")
    everyone = f"共 {ADVISOR_TOTAL + 1} 条"
    total = page.locator(".pagination .total")

    async def search(*choices: tuple[str, str]) -> None:
        await page.goto(f"{console.url}/customers")
        for label, value in choices:
            field = page.get_by_label(label, exact=True)
            if await field.evaluate("node => node.tagName") == "SELECT":
                await field.select_option(label=value)
            else:
                await field.fill(value)
        await page.get_by_role("button", name="查询").click()

    await search(("服务类别", "月嫂"))
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("王阿姨")
    await search(("线索等级", "A类"))
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("王阿姨")
    await search(("负责人", XSS_NAME))  # the owner picker lists staff by name, as text
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("李女士")

    # Every customer here was assigned today (Beijing): a range ending yesterday has none.
    today = clock.today()
    await search(("分配日期从", today.isoformat()))
    await expect(total).to_have_text(everyone)
    await expect(page).to_have_url(re.compile(rf"assignedStartDate={today.isoformat()}"))
    await search(("分配日期至", (today - timedelta(days=1)).isoformat()))
    await expect(page.locator(".empty")).to_contain_text("没有符合条件的客户")
    await search(
        ("分配日期从", today.isoformat()),
        ("分配日期至", (today - timedelta(days=1)).isoformat()),
    )
    await expect(page.locator("#assignedEndDate-error")).to_have_text("结束日期不能早于开始日期")

    # Newest first by default (李女士 was made last); 从旧到新 turns the list round.
    await search()
    await expect(rows(page).first).to_contain_text("李女士")
    await search(("顺序", "从旧到新"))
    await expect(rows(page).first).to_contain_text("王阿姨")
    await expect(page).to_have_url(re.compile(r"sortOrder=asc"))


async def test_the_list_fits_a_tablet(console: Console, customers: None, page: Page) -> None:
    """At 768 px the page does not scroll sideways (the table scrolls inside its own box)."""
    await console.sign_in(page, "manager1")
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.goto(f"{console.url}/customers")
    await expect(rows(page)).to_have_count(20)
    await assert_fits_a_tablet(page)
