"""公海 in Chromium: a manager batch-assigns ten from the pool; an advisor claims until its
cap and is then refused; markup shown as text; bad input and a missing CSRF token change
nothing; an advisor can neither see nor use the manager's controls.

The served app holds advisors to a cap of three customers (its own server: the shared
`console` fixture runs with the default cap of 300).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.conftest import BACKENDS
from tests.console.conftest import XSS_NAME, Console, Staff, assert_fits_a_tablet, serve_console
from tests.live import (
    STAFF_PASSWORD,
    staff_token,
)

CAP = 3
PLAIN = 25
RELEASE_REASON = "客户暂不需要服务"
XSS_PHONE = "13700000001"


@pytest.fixture(scope="module", params=BACKENDS)
async def pool_console(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Console]:
    """A served app with a cap of three, staff, and the pool filled through the API: an
    advisor's customers released with a reason (one of them named as markup)."""
    staff = [
        Staff("seeder"),
        Staff("advisor1"),
        Staff("advisor2", name="李顾问"),
        Staff("manager1", "manager"),
    ]
    async with serve_console(
        request, tmp_path_factory, staff, POOL_HOLDING_CAP=str(CAP)
    ) as console:
        await _fill_pool(console.url)
        yield console


async def _fill_pool(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        headers = {"Authorization": f"Bearer {await staff_token(http, 'seeder')}"}
        ids = []
        # The markup-named one first: the list puts it last (newest first), out of the way
        # of the flows that take the first rows.
        bodies: list[dict[str, Any]] = [{"name": XSS_NAME, "phone": XSS_PHONE}]
        bodies += [
            {"name": f"公海客户{n:02d}", "phone": f"1390000{n:04d}", "serviceCategory": "月嫂"}
            for n in range(PLAIN)
        ]
        for body in bodies:
            created = await http.post("/api/customers", json=body, headers=headers)
            assert created.status_code == 200, created.text
            ids.append(created.json()["data"]["_id"])
        released = await http.post(
            "/api/customers/batch-release-to-pool",
            json={"customerIds": ids, "reason": RELEASE_REASON},
            headers=headers,
        )
        assert released.json()["data"]["success"] == len(ids), released.text


async def pool_total(console: Console, username: str = "manager1", search: str = "") -> int:
    """The pool's size as the API counts it for `username` (those `search` finds)."""
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, username)
        answer = await http.get(
            "/api/customers/public-pool",
            params={"search": search} if search else None,
            headers={"Authorization": f"Bearer {token}"},
        )
    return int(answer.json()["data"]["total"])


def rows(page: Page) -> Locator:
    return page.locator(".pool-table tbody tr")


def card(page: Page, name: str) -> Locator:
    return page.locator(f'[data-card="{name}"]')


async def open_pool(console: Console, page: Page, query: str = "") -> None:
    await page.goto(f"{console.url}/pool{query}")
    await expect(page.get_by_role("heading", name="公海")).to_be_visible()


async def test_a_manager_batch_assigns_ten_customers_from_the_pool(
    pool_console: Console, page: Page
) -> None:
    console = pool_console
    before = await pool_total(console)
    await console.sign_in(page, "manager1")
    await open_pool(console, page)
    await expect(page.locator('a[data-menu="pool"]')).to_have_attribute("aria-current", "page")
    await expect(page.locator(".pagination .total")).to_have_text(f"共 {before} 条")
    await expect(card(page, "pool-size").locator(".value")).to_have_text(str(before))
    await expect(card(page, "arrivals").locator(".value")).to_have_text(str(before))
    await expect(card(page, "claim-rules")).to_contain_text(f"最多持有 {CAP} 个")
    await expect(rows(page)).to_have_count(20)
    first = rows(page).first
    await expect(first).to_contain_text(RELEASE_REASON)
    await expect(first).to_contain_text(re.compile(r"20\d\d-\d\d-\d\d \d\d:\d\d"))
    await expect(first.locator(".phone")).to_have_text(re.compile(r"^1\d\d \d{4} \d{4}$"))
    await console.screenshot(page, "pool-manager-1280")

    names = [await rows(page).nth(i).locator(".name").inner_text() for i in range(10)]
    for i in range(10):
        await rows(page).nth(i).get_by_role("checkbox").check()
    bar = page.locator("[data-batch-bar]")
    await expect(bar).to_contain_text("已选 10 个客户")
    await bar.get_by_role("button", name="批量分配").click()
    dialog = page.get_by_role("dialog", name="批量分配所选客户")
    await expect(dialog).to_be_visible()
    await console.screenshot(page, "pool-assign-dialog-1280")

    # No advisor chosen: told beside the field, the dialog stays, nothing moves.
    async with page.expect_response(re.compile(r"/pool/assign$")) as refused:
        await dialog.get_by_role("button", name="确定分配").click()
    assert (await refused.value).status == 400
    advisor = dialog.get_by_label("分配给")
    await expect(advisor).to_have_attribute("aria-invalid", "true")
    await expect(dialog.locator("#assign-batch-assignedTo-error")).to_have_text(
        "请选择要分配给的顾问"
    )
    await expect(dialog).to_be_visible()
    assert await pool_total(console) == before

    await advisor.select_option(label="李顾问（advisor2）")
    await dialog.get_by_label("分配原因（可不填）").fill("新人练手")
    await dialog.get_by_role("button", name="确定分配").click()
    await expect(page.locator("#toasts")).to_contain_text("分配完成：成功 10 个，失败 0 个")
    await expect(dialog).to_be_hidden()
    await expect(page.locator(".pagination .total")).to_have_text(f"共 {before - 10} 条")
    await expect(card(page, "pool-size").locator(".value")).to_have_text(str(before - 10))
    for name in names:
        await expect(page.locator(".pool-table .name", has_text=name)).to_have_count(0)
    await expect(bar).to_be_hidden()
    assert await pool_total(console) == before - 10
    # They are advisor2's now.
    await page.goto(f"{console.url}/customers?keyword={names[0]}")
    await expect(page.locator(".data-table tbody tr").first).to_contain_text("李顾问")


async def test_an_advisor_claims_until_its_cap(
    pool_console: Console, page: Page, browser: Browser
) -> None:
    console = pool_console
    before = await pool_total(console, "advisor1")
    await console.sign_in(page, "advisor1")
    await open_pool(console, page)
    holding = card(page, "holding")
    await expect(holding.locator(".value")).to_have_text(f"0 / {CAP}")
    await expect(card(page, "claims-left").locator(".value")).to_have_text("20")
    # The manager's controls are not there.
    await expect(page.get_by_role("checkbox")).to_have_count(0)
    await expect(page.get_by_role("button", name="批量分配")).to_have_count(0)
    await expect(page.get_by_role("button", name=re.compile("^分配"))).to_have_count(0)
    await expect(page.locator("dialog")).to_have_count(0)
    await console.screenshot(page, "pool-advisor-1280")

    # A second tab opened before the cap is reached: its buttons still look usable.
    other = await page.context.new_page()
    await open_pool(console, other)

    for claimed in range(1, CAP + 1):
        name = await rows(page).first.locator(".name").inner_text()
        await rows(page).first.get_by_role("button", name=f"领取 {name}").click()
        await expect(page.locator("#toasts")).to_contain_text("领取成功")
        await expect(page.locator(".pool-table .name", has_text=name)).to_have_count(0)
        await expect(holding.locator(".value")).to_have_text(f"{claimed} / {CAP}")
        await expect(page.locator(".pagination .total")).to_have_text(f"共 {before - claimed} 条")
    await expect(holding).to_contain_text("已达上限")
    await expect(card(page, "claims-left").locator(".value")).to_have_text(str(20 - CAP))
    blocked = page.locator("#claim-blocked")
    await expect(blocked).to_contain_text(f"已达持有客户上限（{CAP} / {CAP}）")
    claim_buttons = page.get_by_role("button", name=re.compile("^领取"))
    shown = min(20, before - CAP)
    assert shown > 0
    await expect(claim_buttons).to_have_count(shown)
    for i in range(shown):
        await expect(claim_buttons.nth(i)).to_be_disabled()

    # The stale tab tries one more (one it still shows unclaimed): the service refuses it,
    # in Chinese, and nothing moves.
    async with other.expect_response(re.compile(r"/pool/claim$")) as refused:
        await rows(other).last.get_by_role("button", name=re.compile("^领取")).click()
    assert (await refused.value).status == 409
    await expect(other.get_by_role("alert").first).to_contain_text("领取失败：超过持有客户上限")
    await expect(other.locator("#toasts")).to_contain_text("超过持有客户上限")
    await expect(card(other, "holding").locator(".value")).to_have_text(f"{CAP} / {CAP}")
    assert await pool_total(console, "advisor1") == before - CAP
    await other.close()

    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.reload()
    await expect(holding).to_contain_text("已达上限")
    await console.screenshot(page, "pool-advisor-768")

    # The assign route is the manager's: 403, as the API's.
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    first_id = await _first_pool_id(console)
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        advisor2 = await _user_id(http, "advisor2")
    forbidden = await page.request.post(
        f"{console.url}/pool/assign",
        form={"csrf_token": token or "", "ids": first_id, "assignedTo": advisor2},
        max_redirects=0,
    )
    assert forbidden.status == 403
    assert await pool_total(console, "advisor1") == before - CAP


async def test_a_name_that_is_markup_shows_as_text_and_one_row_is_assigned(
    pool_console: Console, page: Page
) -> None:
    console = pool_console
    alerts: list[str] = []
    page.on("dialog", lambda box: alerts.append(box.message))
    await console.sign_in(page, "manager1")
    await open_pool(console, page)
    await page.get_by_label("搜索").fill("137 0000")
    await page.get_by_role("button", name="查询").click()
    await expect(page).to_have_url(re.compile(r"/pool\?search=1370000$"))
    await expect(rows(page)).to_have_count(1)
    row = rows(page).first
    await expect(row.locator(".name")).to_have_text(XSS_NAME)
    assert await page.locator(".pool-table img").count() == 0

    await row.get_by_role("button", name=f"分配 {XSS_NAME}").click()
    dialog = page.get_by_role("dialog", name="分配客户")
    await expect(dialog.locator("[data-fill=customerName]")).to_have_text(XSS_NAME)
    await dialog.get_by_label("分配给").select_option(label="李顾问（advisor2）")
    # The browser stops at 200 characters; a longer reason sent anyway is refused beside it.
    before = await pool_total(console)
    await dialog.locator("textarea").evaluate("(box) => box.removeAttribute('maxlength')")
    await dialog.get_by_label("分配原因（可不填）").fill("长" * 201)
    async with page.expect_response(re.compile(r"/pool/assign$")) as refused:
        await dialog.get_by_role("button", name="确定分配").click()
    assert (await refused.value).status == 400
    await expect(dialog.locator("#assign-one-reason-error")).to_have_text("分配原因不能超过200字")
    await expect(dialog.locator("[data-fill=customerName]")).to_contain_text(XSS_NAME)
    await expect(rows(page)).to_have_count(1)
    # Nothing moved: the pool is as big as before, the customer still in it.
    assert await pool_total(console) == before
    assert await pool_total(console, search=XSS_PHONE) == 1

    await dialog.get_by_label("分配原因（可不填）").fill("熟客")
    await dialog.get_by_role("button", name="确定分配").click()
    await expect(page.locator("#toasts")).to_contain_text("分配完成：成功 1 个")
    await expect(page.locator(".empty")).to_contain_text("没有符合条件的公海客户")
    assert alerts == []
    assert await page.locator("img").count() == 0


async def test_refused_customers_of_an_assignment_are_listed(
    pool_console: Console, page: Page
) -> None:
    console = pool_console
    await console.sign_in(page, "manager1")
    await open_pool(console, page)
    taken = await rows(page).nth(0).locator(".name").inner_text()
    kept = await rows(page).nth(1).locator(".name").inner_text()
    await rows(page).nth(0).get_by_role("checkbox").check()
    await rows(page).nth(1).get_by_role("checkbox").check()
    # Meanwhile someone else assigns the first of them to another advisor.
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, "manager1")
        moved = await http.post(
            "/api/customers/public-pool/assign",
            json={"customerIds": [await _first_pool_id(console)],
                  "assignedTo": await _user_id(http, "advisor1")},
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert moved.json()["data"]["success"] == 1
    await page.get_by_role("button", name="批量分配").click()
    dialog = page.get_by_role("dialog", name="批量分配所选客户")
    await dialog.get_by_label("分配给").select_option(label="李顾问（advisor2）")
    await dialog.get_by_role("button", name="确定分配").click()
    notice = page.locator(".notice[role=alert]")
    await expect(notice).to_contain_text("分配完成：成功 1 个，失败 1 个")
    await expect(notice.locator("li")).to_have_text(
        re.compile(f"^{taken}（CUS\\d+）：客户不在公海中$")
    )
    await expect(page.locator(".pool-table .name", has_text=kept)).to_have_count(0)


async def test_posts_without_the_csrf_token_or_rows_change_nothing(
    pool_console: Console, page: Page
) -> None:
    console = pool_console
    before = await pool_total(console)
    first_id = await _first_pool_id(console)
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        advisor2 = await _user_id(http, "advisor2")
    await console.sign_in(page, "manager1")
    await open_pool(console, page)
    refused = await page.request.post(
        f"{console.url}/pool/assign",
        form={"ids": first_id, "assignedTo": advisor2},
        max_redirects=0,
    )
    assert refused.status == 403
    assert "CSRF 校验失败" in await refused.text()
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    no_rows = await page.request.post(
        f"{console.url}/pool/assign",
        form={"csrf_token": token or "", "assignedTo": advisor2},
        max_redirects=0,
    )
    assert no_rows.status == 400
    assert "请先勾选要分配的客户" in await no_rows.text()
    assert await pool_total(console) == before

    await page.context.clear_cookies()
    await console.sign_in(page, "advisor2")
    await open_pool(console, page)
    refused = await page.request.post(
        f"{console.url}/pool/claim", form={"ids": first_id}, max_redirects=0
    )
    assert refused.status == 403
    assert await pool_total(console) == before


async def test_the_pool_fits_a_tablet(pool_console: Console, page: Page) -> None:
    """At 768 px the page does not scroll sideways (a table may, inside its own box)."""
    console = pool_console
    await console.sign_in(page, "manager1")
    await page.set_viewport_size({"width": 768, "height": 1024})
    await open_pool(console, page)
    await expect(rows(page).first).to_be_visible()
    await assert_fits_a_tablet(page)


async def _first_pool_id(console: Console) -> str:
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, "manager1")
        answer = await http.get(
            "/api/customers/public-pool", headers={"Authorization": f"Bearer {token}"}
        )
    return str(answer.json()["data"]["items"][0]["_id"])


async def _user_id(http: httpx.AsyncClient, username: str) -> str:
    """A staff member's id, as its own login answers it."""
    answer = await http.post(
        "/api/auth/login", json={"username": username, "password": STAFF_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["user"]["_id"])
