"""首页 in Chromium: the cards, the breakdowns and the funnel match the customers made through
the API; the period changes by preset or custom range (in the URL, the region re-rendered);
charts are drawn without a CSP violation or script error; an advisor's numbers are its own;
names that are markup show as text."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import ConsoleMessage, Locator, Page, expect
from sqlalchemy import select

from tests.console.conftest import XSS_NAME, Console, assert_fits_a_tablet
from tests.live import staff_token
from wxcrm.core import clock
from wxcrm.core.db import Database
from wxcrm.core.models import utcnow
from wxcrm.notifications.models import Notification
from wxcrm.users.models import User

CHARTS = ("levels", "status", "funnel")


@dataclass(frozen=True)
class Made:
    markup_customer_id: str
    due_customer_id: str


@pytest.fixture(scope="module")
async def made(console: Console) -> AsyncIterator[Made]:
    """Customers through the API: advisor1 has four (one signed, one named as markup, one
    followed up and due today), the advisor named as markup one; a failed notification of
    advisor1's today and a pending one of the other advisor's, written to the outbox."""
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:

        async def add(username: str, body: dict[str, Any]) -> str:
            token = await staff_token(http, username)
            response = await http.post(
                "/api/customers", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
            return str(response.json()["data"]["_id"])

        await add("advisor1", {"name": "王阿姨", "phone": "13800138000", "leadSource": "美团",
                               "leadLevel": "A类", "contractStatus": "已签约"})  # fmt: skip
        markup = await add("advisor1", {"name": XSS_NAME, "phone": "13700000001",
                                        "leadSource": "抖音", "leadLevel": "B类"})  # fmt: skip
        await add("advisor1", {"name": "赵先生", "phone": "13700000002", "leadSource": "美团",
                               "leadLevel": "C类"})  # fmt: skip
        due = await add("advisor1", {"name": "钱女士", "phone": "13700000003",
                                     "leadSource": "转介绍"})  # fmt: skip
        token = await staff_token(http, "advisor1")
        response = await http.post(
            f"/api/customers/{due}/follow-ups",
            json={
                "method": "电话",
                "content": "约了明天看阿姨",
                "nextFollowUpAt": clock.today().isoformat(),
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        await add("xss", {"name": "李女士", "phone": "13600136000", "leadSource": "抖音",
                          "leadLevel": "D类", "contractStatus": "签约中"})  # fmt: skip
    database = Database.from_url(console.env["DATABASE_URL"])
    try:
        async with database.writer() as session:
            rows = await session.execute(select(User.username, User.id))
            ids: dict[str, str] = dict(rows.all())
            now = utcnow()
            session.add_all(
                [
                    Notification(event="customer_assigned", channel="direct",
                                 advisor_id=ids["advisor1"], payload={}, status="failed",
                                 attempts=3, last_errcode=43101,
                                 last_errmsg="user refuse to accept the msg",
                                 created_at=now, updated_at=now),
                    Notification(event="customer_action", channel="direct",
                                 advisor_id=ids["xss"], payload={}, status="pending",
                                 created_at=now, updated_at=now),
                ]
            )  # fmt: skip
            await session.commit()
    finally:
        await database.dispose()
    yield Made(markup, due)


def card(page: Page, key: str) -> Locator:
    return page.locator(f'[data-card="{key}"]')


def row(page: Page, table: str, heading: str) -> Locator:
    return page.locator(f"#{table} tbody tr").filter(
        has=page.get_by_role("rowheader", name=heading, exact=True)
    )


def watch(page: Page) -> list[str]:
    """Script errors and console errors (a CSP violation is one) as the page logs them."""
    problems: list[str] = []

    def logged(message: ConsoleMessage) -> None:
        url = message.location.get("url", "")
        # The browser asks for a favicon the console has none of, and logs the answer to a
        # refused range, which the test asks for.
        expected = url.endswith("/favicon.ico") or ("400" in message.text and "/?from=" in url)
        if message.type == "error" and not expected:
            problems.append(f"{message.text} {url}")

    page.on("console", logged)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    return problems


async def expect_charts(page: Page) -> None:
    """Each chart drawn: a canvas of some size, as wide as its box."""
    await page.wait_for_function(
        """() => Array.from(document.querySelectorAll("[data-chart]")).every(box => {
            const canvas = box.querySelector("canvas");
            return canvas && Math.abs(canvas.clientWidth - box.clientWidth) <= 1;
        })"""
    )
    for kind in CHARTS:
        canvas = page.locator(f'[data-chart="{kind}"] canvas').first
        await expect(canvas).to_be_visible()
        box = await canvas.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100, (kind, box)


async def test_a_manager_reads_the_dashboard_and_changes_the_period(
    console: Console, made: Made, page: Page
) -> None:
    problems = watch(page)
    await console.sign_in(page, "manager1")
    await expect(page.get_by_role("heading", name="首页")).to_be_visible()
    await expect(page.locator('.period-presets [aria-current="true"]')).to_have_text("今日")
    await expect(card(page, "total").locator(".value")).to_have_text("5")
    await expect(card(page, "new").locator(".value")).to_have_text("5")
    await expect(card(page, "new").locator(".delta")).to_contain_text("↑")
    await expect(card(page, "new").locator(".delta")).to_contain_text("5")
    await expect(card(page, "signed").locator(".value")).to_have_text("1")
    # Not yet followed up by their owner: the markup one, 赵先生, 李女士.
    await expect(card(page, "waiting").locator(".value")).to_have_text("3")
    await expect(card(page, "waiting")).to_contain_text("今日到期跟进 1 位")

    # Levels by source: the table under the stacked bar.
    meituan = row(page, "levels-table", "美团").locator("td")
    # Columns: O A B C D 流失, 未分级 (钱女士 has no level), 合计.
    await expect(meituan).to_have_text(["0", "1", "0", "1", "0", "0", "0", "2"])
    await expect(row(page, "levels-table", "抖音").locator("td").last).to_have_text("2")
    await expect(row(page, "levels-table", "转介绍").locator("td").nth(6)).to_have_text("1")
    await expect(page.locator("#levels-table thead th").nth(7)).to_have_text("未分级")
    await expect(row(page, "status-table", "已签约").locator("td")).to_have_text(["1", "20.0%"])
    await expect(row(page, "status-table", "签约中").locator("td").first).to_have_text("1")

    # The funnel: every advisor, the one named as markup shown as text.
    advisor1 = row(page, "funnel-table", "advisor1").locator("td")
    await expect(advisor1.first).to_have_text("4")
    await expect(row(page, "funnel-table", "advisor1").locator(".signed")).to_have_text("1")
    await expect(advisor1.last).to_have_text("25.0%")
    await expect(row(page, "funnel-table", XSS_NAME).locator("td").last).to_have_text("0.0%")
    await expect(row(page, "funnel-table", "leaver").locator("td").last).to_have_text("—")

    # Today's to-do and the notifications.
    await expect(page.locator('[data-count="due"]')).to_have_text("1")
    await expect(page.locator("#todo-due a")).to_have_text(["钱女士"])
    await expect(page.locator("#todo-due a")).to_have_attribute(
        "href", f"/customers/{made.due_customer_id}"
    )
    await expect(page.locator('[data-count="waiting"]')).to_have_text("3")
    await expect(page.locator("#todo-waiting a").filter(has_text=XSS_NAME)).to_have_attribute(
        "href", f"/customers/{made.markup_customer_id}"
    )
    await expect(page.locator('[data-health="backlog"] dd')).to_have_text("1")
    await expect(page.locator('[data-health="failed-today"] dd')).to_have_text("1")
    await expect(page.locator("#failed-today")).to_contain_text("客户分配")
    await expect(page.locator("#failed-today")).to_contain_text("43101")
    assert await page.locator("#dashboard img").count() == 0
    await expect_charts(page)
    await console.screenshot(page, "dashboard-manager-1280")
    # A tooltip: drawn on the canvas (an HTML one would break the CSP), so the pointer over
    # the chart changes what the canvas shows and adds nothing to the page.
    levels = page.locator('[data-chart="levels"]')
    elements = await levels.evaluate("(box) => box.querySelectorAll('*').length")
    still = await levels.evaluate("(box) => box.querySelector('canvas').toDataURL()")
    await levels.locator("canvas").first.hover()
    await page.wait_for_function(
        "([box, still]) => box.querySelector('canvas').toDataURL() !== still",
        arg=[await levels.element_handle(), still],
    )
    assert await levels.evaluate("(box) => box.querySelectorAll('*').length") == elements

    # A preset: only the region is fetched again, the period goes into the URL.
    await page.locator('[data-period="week"]').click()
    await expect(page).to_have_url(f"{console.url}/?period=week")
    await expect(page.locator('.period-presets [aria-current="true"]')).to_have_text("本周")
    await expect(page.locator(".period-range")).to_contain_text(clock.today().isoformat())
    await expect(card(page, "new").locator(".value")).to_have_text("5")
    await expect_charts(page)
    await page.locator('[data-period="30d"]').click()
    await expect(page).to_have_url(f"{console.url}/?period=30d")
    await expect(page.locator(".period-range")).to_contain_text("（30 天）")

    # A custom range that ends before it begins: told beside its field, 400.
    await page.get_by_label("开始日期").fill("2024-05-10")
    await page.get_by_label("结束日期").fill("2024-05-01")
    async with page.expect_response(re.compile(r"from=2024-05-10")) as answer:
        await page.get_by_role("button", name="自定义查询").click()
    assert (await answer.value).status == 400
    await expect(page.locator("#period-to-error")).to_have_text("结束日期不能早于开始日期")
    await expect(page.get_by_label("结束日期")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_role("alert")).to_contain_text("统计区间有误")
    await expect(page.locator("[data-card]")).to_have_count(0)
    # A right one: today's customers are counted, yesterday is the previous period.
    today = clock.today().isoformat()
    await page.get_by_label("开始日期").fill(today)
    await page.get_by_label("结束日期").fill(today)
    await page.get_by_role("button", name="自定义查询").click()
    await expect(page).to_have_url(re.compile(rf"from={today}&to={today}"))
    await expect(card(page, "total").locator(".value")).to_have_text("5")
    await expect(page.locator("#period-to-error")).to_have_count(0)
    await expect_charts(page)

    # Through the menu from another page (a boosted link: that page's head, without ECharts,
    # is kept): the charts are still drawn.
    await page.goto(f"{console.url}/customers")
    await expect(page.get_by_role("heading", name="客户列表")).to_be_visible()
    await page.locator('a[data-menu="home"]').click()
    await expect(page.locator("[data-card]")).to_have_count(4)
    await expect_charts(page)

    await page.set_viewport_size({"width": 768, "height": 1024})
    await expect_charts(page)
    await console.screenshot(page, "dashboard-manager-768")
    assert problems == [], problems


async def test_a_bad_date_in_the_url_is_told_beside_its_field(
    console: Console, made: Made, page: Page
) -> None:
    await console.sign_in(page, "manager1")
    response = await page.goto(f"{console.url}/?from=2024-13-01&to=2024-05-01")
    assert response is not None and response.status == 400
    await expect(page.locator("#period-from-error")).to_have_text("日期格式应为 2024-01-31")
    await expect(page.get_by_label("开始日期")).to_have_attribute("aria-invalid", "true")
    response = await page.goto(f"{console.url}/?from=2024-01-01")
    assert response is not None and response.status == 400
    await expect(page.locator("#period-to-error")).to_have_text("请选择结束日期")
    response = await page.goto(f"{console.url}/?from=2020-01-01&to=2024-01-01")
    assert response is not None and response.status == 400
    await expect(page.locator("#period-to-error")).to_have_text("自定义范围最长 366 天")
    # Today's to-do does not depend on the period: it still shows.
    await expect(page.locator('[data-count="due"]')).to_have_text("1")
    # Without htmx a preset is a plain link; with it, the server answers only the region.
    plain = await page.request.get(f"{console.url}/?period=month")
    assert plain.status == 200 and "<html" in await plain.text()
    region = await page.request.get(
        f"{console.url}/?period=month&from=&to=",
        headers={"HX-Request": "true", "HX-Target": "dashboard"},
    )
    assert region.status == 200
    assert region.headers["hx-push-url"] == "/?period=month"
    body = await region.text()
    assert "<html" not in body and 'id="dashboard"' in body


async def test_an_advisor_sees_only_its_own_numbers(
    console: Console, made: Made, page: Page
) -> None:
    problems = watch(page)
    await console.sign_in(page, "advisor1")
    await expect(card(page, "total").locator(".value")).to_have_text("4")
    await expect(card(page, "new").locator(".value")).to_have_text("4")
    await expect(card(page, "signed").locator(".value")).to_have_text("1")
    await expect(card(page, "waiting").locator(".value")).to_have_text("2")
    await expect(page.get_by_role("heading", name="我的转化漏斗")).to_be_visible()
    await expect(page.locator("#funnel-table tbody tr")).to_have_count(1)
    await expect(row(page, "funnel-table", "advisor1").locator("td").last).to_have_text("25.0%")
    await expect(row(page, "status-table", "签约中")).to_have_count(0)
    await expect(row(page, "levels-table", "抖音").locator("td").last).to_have_text("1")
    # The customer named as markup, in the to-do as text.
    await expect(page.locator("#todo-waiting a")).to_have_text(["赵先生", XSS_NAME])
    assert await page.locator("#dashboard img").count() == 0
    # Its own notifications: the failure, not the other advisor's pending one.
    await expect(page.locator('[data-health="backlog"] dd')).to_have_text("0")
    await expect(page.locator('[data-health="failed-today"] dd')).to_have_text("1")
    await expect_charts(page)
    await console.screenshot(page, "dashboard-advisor-1280")
    # The other advisor's customer is not in reach from the dashboard either.
    await page.goto(f"{console.url}/?period=30d")
    await expect(page.get_by_text("李女士")).to_have_count(0)
    await expect(page.get_by_text(XSS_NAME, exact=True)).to_have_count(1)
    assert problems == [], problems


async def test_the_dashboard_fits_a_tablet(console: Console, made: Made, page: Page) -> None:
    """At 768 px the page does not scroll sideways (a table may, inside its own box)."""
    await console.sign_in(page, "manager1")
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.goto(f"{console.url}/?period=30d")
    await expect(card(page, "total").locator(".value")).to_have_text("5")
    await expect_charts(page)
    await assert_fits_a_tablet(page)
