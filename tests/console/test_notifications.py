"""通知 in Chromium: a notification that WeChat refused, found by a manager and sent again once
the cause is fixed; an advisor's own log only; the advisors' subscriptions; escaping, CSRF and
bad filters.

The app is served with its delivery worker, WeChat being the simulator on loopback: the
failure is WeChat's own answer (43101, no subscription left), not a row written by hand.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.conftest import ASSIGN_TEMPLATE, BACKENDS, SIM_APP_ID, SIM_SECRET
from tests.console.conftest import XSS_NAME, Console, Staff, assert_fits_a_tablet, serve_console
from tests.live import staff_token
from wxcrm.console.session import SESSION_COOKIE
from wxcrm.wechat.sim import SimControl

ADVISOR_OPENID = "o-demo-advisor1"
ADVISOR_PHONE = "13800000011"
FAILED_CUSTOMER = "陈女士"
SKIPPED_CUSTOMER = "周先生"


@dataclass
class Story:
    """What the module's set-up made: a failed notification of advisor1, a skipped one of xss."""

    failed_id: str
    skipped_id: str
    advisor_id: str


@pytest.fixture(scope="module", params=BACKENDS)
async def console(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sim_url: str,
) -> AsyncIterator[Console]:
    """conftest's served app, with its delivery worker on and WeChat pointed at the simulator
    (the assignment template configured); advisor1 has a phone to log in to the mini program."""
    staff = [
        Staff("advisor1", phone=ADVISOR_PHONE),
        Staff("manager1", "manager"),
        Staff("admin1", "admin"),
        Staff("xss", name=XSS_NAME),
    ]
    async with serve_console(
        request,
        tmp_path_factory,
        staff,
        WECHAT_API_BASE=sim_url,
        WECHAT_APP_ID=SIM_APP_ID,
        WECHAT_APP_SECRET=SIM_SECRET,
        WECHAT_TEMPLATE_CUSTOMER_ASSIGNED=ASSIGN_TEMPLATE,
        WORKER_EMBEDDED="true",
        WORKER_POLL_SECONDS="0.05",
    ) as console:
        yield console


def api(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def subscribe(http: httpx.AsyncClient, token: str, advisor_id: str) -> None:
    """advisor1 says yes to the assignment message's prompt in the mini program (one send)."""
    data(
        await http.post(
            "/api/advisor/subscribe",
            headers=api(token),
            json={
                "advisorId": advisor_id,
                "openid": ADVISOR_OPENID,
                "templateId": ASSIGN_TEMPLATE,
                "subscribed": True,
            },
        )
    )


async def notification(http: httpx.AsyncClient, token: str, notification_id: str) -> Any:
    return data(await http.get(f"/api/notifications/{notification_id}", headers=api(token)))


@pytest.fixture(scope="module")
async def story(console: Console, _sim_control: SimControl) -> AsyncIterator[Story]:
    """advisor1 binds its WeChat and subscribes in the CRM, but WeChat holds no send for it:
    the customer the manager assigns to it makes a message WeChat refuses (43101). A customer
    assigned to xss, who never bound a WeChat, makes a message skipped at once."""
    await _sim_control.reset()  # the simulator is the session's: no sends left from before
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        login_code = await _sim_control.mint_login_code(ADVISOR_OPENID)
        login = data(
            await http.post(
                "/api/auth/miniprogram-login", json={"code": login_code, "phone": ADVISOR_PHONE}
            )
        )
        advisor_token, advisor_id = login["access_token"], login["user"]["id"]
        await subscribe(http, advisor_token, advisor_id)
        manager = await staff_token(http, "manager1")
        admin = await staff_token(http, "admin1")
        users = data(await http.get("/api/users?limit=50", headers=api(admin)))
        ids = {user["username"]: user["_id"] for user in users["items"]}

        async def assign(name: str, phone: str, to: str) -> None:
            created = data(
                await http.post(
                    "/api/customers", headers=api(manager), json={"name": name, "phone": phone}
                )
            )
            data(
                await http.patch(
                    f"/api/customers/{created['_id']}/assign",
                    headers=api(manager),
                    json={"assignedTo": ids[to], "assignmentReason": "新线索"},
                )
            )

        await assign(FAILED_CUSTOMER, "13700000021", "advisor1")
        await assign(SKIPPED_CUSTOMER, "13700000022", "xss")
        failed = await wait_for(http, manager, "failed")
        skipped = await wait_for(http, manager, "skipped")
    yield Story(failed_id=failed["_id"], skipped_id=skipped["_id"], advisor_id=advisor_id)


async def wait_for(http: httpx.AsyncClient, token: str, status: str) -> Any:
    for _ in range(200):
        items = data(await http.get(f"/api/notifications?status={status}", headers=api(token)))
        if items["items"]:
            return items["items"][0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {status} notification within 10 s")


def rows(page: Page) -> Any:
    return page.locator(".notification-table tbody tr")


async def test_a_manager_finds_a_failed_notification_and_sends_it_again(
    console: Console, story: Story, page: Page, _sim_control: SimControl
) -> None:
    await console.sign_in(page, "manager1")
    await page.get_by_role("link", name="通知", exact=True).click()
    await expect(page.get_by_role("heading", name="通知")).to_be_visible()
    await expect(page.locator(".pagination .total")).to_have_text("共 2 条")
    await console.screenshot(page, "notifications-1280")

    await page.get_by_label("状态").select_option("失败")
    await page.get_by_role("button", name="查询").click()
    await expect(page).to_have_url(re.compile(r"status=failed"))
    await expect(rows(page)).to_have_count(1)
    row = rows(page).first
    await expect(row).to_contain_text("客户分配")
    await expect(row.locator(".advisor")).to_have_text("advisor1")
    await expect(row.locator(".customer a")).to_have_text(FAILED_CUSTOMER)
    await expect(row.locator(".customer a")).to_have_attribute("href", re.compile(r"^/customers/"))
    await expect(row.locator(".tag")).to_have_text("失败")
    await expect(row.locator(".errcode")).to_contain_text("43101")
    await expect(row).to_contain_text(re.compile(r"20\d\d-\d\d-\d\d \d\d:\d\d"))
    await expect(page.locator(".pagination .total")).to_have_text("共 1 条")

    await row.get_by_role("link", name=re.compile("查看通知详情")).click()
    await expect(page.get_by_role("heading", name="通知详情")).to_be_visible()
    await expect(page).to_have_url(f"{console.url}/notifications/{story.failed_id}")
    attempt = page.locator(".attempts-table tbody tr").first
    await expect(attempt).to_contain_text("失败")
    await expect(attempt.locator(".errcode")).to_have_text("43101")
    await expect(attempt).to_contain_text("user refuse to accept the msg")
    # The message's content, as sent; the advisor's openid never shows whole.
    await expect(page.locator(".card").nth(1)).to_contain_text(FAILED_CUSTOMER)
    await expect(page.locator(".card").nth(1)).to_contain_text("thing1")
    assert ADVISOR_OPENID not in await page.content()
    await console.screenshot(page, "notification-detail-1280")

    # The cause fixed: WeChat holds a send for advisor1 again, and the CRM knows it.
    await _sim_control.grant(ADVISOR_OPENID, ASSIGN_TEMPLATE, 1)
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        await subscribe(http, await staff_token(http, "advisor1"), story.advisor_id)

    await page.get_by_role("button", name="重试").click()
    await expect(page.locator(".toast-item")).to_have_text("已重新加入发送队列")
    await expect(page.locator("#notification-status")).not_to_have_text("失败")
    for _ in range(50):
        if await page.locator("#notification-status").inner_text() == "已发送":
            break
        await asyncio.sleep(0.2)
        await page.reload()
    await expect(page.locator("#notification-status")).to_have_text("已发送")
    await expect(page.locator(".attempts-table")).to_contain_text("发送成功")
    await expect(page.get_by_role("button", name="重试")).to_have_count(0)
    messages = await _sim_control.messages(ADVISOR_OPENID)
    assert [m["template_id"] for m in messages] == [ASSIGN_TEMPLATE]

    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.goto(f"{console.url}/notifications")
    await expect(rows(page)).to_have_count(2)
    await console.screenshot(page, "notifications-768")


async def test_an_advisor_sees_only_its_own_notifications_and_cannot_retry(
    console: Console, story: Story, page: Page
) -> None:
    await console.sign_in(page, "advisor1")
    await page.goto(f"{console.url}/notifications?advisorId={story.advisor_id[::-1]}")
    await expect(page.locator(".pagination .total")).to_have_text("共 1 条")
    await expect(rows(page).first).to_contain_text(FAILED_CUSTOMER)
    await expect(page.get_by_text(SKIPPED_CUSTOMER)).to_have_count(0)
    await expect(page.get_by_label("顾问")).to_have_count(0)
    await expect(page.get_by_role("link", name="顾问订阅")).to_have_count(0)

    await page.goto(f"{console.url}/notifications/{story.failed_id}")
    await expect(page.get_by_role("heading", name="通知详情")).to_be_visible()
    await expect(page.get_by_role("button", name="重试")).to_have_count(0)
    # Another advisor's notification is as good as missing, as in the API.
    response = await page.goto(f"{console.url}/notifications/{story.skipped_id}")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("alert")).to_contain_text("通知不存在")
    response = await page.goto(f"{console.url}/notifications/advisors")
    assert response is not None and response.status == 403

    # Even with its page's CSRF token, an advisor may not retry (the API's rule).
    await page.goto(f"{console.url}/notifications")
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    refused = await page.request.post(
        f"{console.url}/notifications/{story.skipped_id}/retry", headers={"X-CSRF-Token": token}
    )
    assert refused.status == 403
    assert "没有权限执行此操作" in await refused.text()


async def test_the_advisors_subscriptions_and_names_shown_as_text(
    console: Console, story: Story, page: Page
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/notifications?status=skipped")
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first.locator(".advisor")).to_have_text(XSS_NAME)
    await expect(rows(page).first).to_contain_text("顾问未绑定微信")
    await expect(rows(page).first.locator(".tag")).to_have_text("已跳过")

    await page.get_by_role("link", name="顾问订阅").click()
    await expect(page).to_have_url(f"{console.url}/notifications/advisors")
    advisor = page.locator('.advisor-table tr[data-username="advisor1"]')
    await expect(advisor.locator(".openid")).to_have_text("o-de…sor1")
    await expect(advisor).to_contain_text(re.compile(r"20\d\d-\d\d-\d\d \d\d:\d\d"))
    xss = page.locator('.advisor-table tr[data-username="xss"]')
    await expect(xss.locator(".name")).to_have_text(XSS_NAME)
    await expect(xss.locator(".openid")).to_have_text("未绑定")
    # Only the assignment template is configured: its sends counted, the others not set up.
    await expect(xss.locator(".credits")).to_have_text(["未配置", "0", "未配置"])
    assert await page.locator("main img").count() == 0
    assert ADVISOR_OPENID not in await page.content()
    assert dialogs == []
    await console.screenshot(page, "notification-advisors-1280")


async def test_the_event_and_advisor_filters_narrow_the_log(
    console: Console, story: Story, page: Page
) -> None:
    """Both of the story's notifications are assignments, one to each advisor."""
    await console.sign_in(page, "manager1")
    await page.goto(f"{console.url}/notifications")
    await expect(page.locator(".pagination .total")).to_have_text("共 2 条")
    event, advisor = page.get_by_label("事件"), page.get_by_label("顾问")
    await event.select_option(label="客户动态")
    await page.get_by_role("button", name="查询").click()
    await expect(page).to_have_url(re.compile(r"event=customer_action"))
    await expect(page.locator(".empty")).to_contain_text("没有符合条件的通知")
    await event.select_option(label="客户分配")
    await page.get_by_role("button", name="查询").click()
    await expect(page).to_have_url(re.compile(r"event=customer_assigned"))
    await expect(rows(page)).to_have_count(2)
    await expect(page.locator(".pagination .total")).to_have_text("共 2 条")
    await advisor.select_option(label=XSS_NAME)
    await page.get_by_role("button", name="查询").click()
    await expect(page).to_have_url(re.compile(r"advisorId=[0-9a-f]{24}"))
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first.locator(".advisor")).to_have_text(XSS_NAME)
    await expect(rows(page).first.locator(".customer")).to_contain_text(SKIPPED_CUSTOMER)
    await expect(event).to_have_value("customer_assigned")
    await advisor.select_option(label="advisor1")
    await page.get_by_role("button", name="查询").click()
    await expect(page).to_have_url(re.compile(f"advisorId={story.advisor_id}"))
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first.locator(".advisor")).to_have_text("advisor1")
    await expect(rows(page).first.locator(".customer a")).to_have_text(FAILED_CUSTOMER)
    await expect(page.locator(".pagination .total")).to_have_text("共 1 条")


async def test_the_log_fits_a_tablet(console: Console, story: Story, page: Page) -> None:
    """At 768 px the page does not scroll sideways (a table may, inside its own box)."""
    await console.sign_in(page, "manager1")
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.goto(f"{console.url}/notifications")
    await expect(rows(page)).to_have_count(2)
    await assert_fits_a_tablet(page)


async def test_a_retry_without_its_csrf_token_is_refused(console: Console, story: Story) -> None:
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, "manager1")
        before = await notification(http, token, story.skipped_id)
        http.cookies.set(SESSION_COOKIE, token)
        refused = await http.post(f"/notifications/{story.skipped_id}/retry", data={})
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        after = await notification(http, token, story.skipped_id)
    assert (after["status"], after["updatedAt"]) == (before["status"], before["updatedAt"])


async def test_a_bad_filter_is_told_beside_its_field(
    console: Console, story: Story, page: Page
) -> None:
    await console.sign_in(page, "manager1")
    response = await page.goto(
        f"{console.url}/notifications?status=lost&dateFrom=2024-13-01&event=x"
    )
    assert response is not None and response.status == 400
    await expect(page.locator("#status-error")).to_have_text("请从列表中选择状态")
    await expect(page.locator("#event-error")).to_have_text("请从列表中选择事件")
    await expect(page.locator("#dateFrom-error")).to_have_text("日期格式应为 2024-01-31")
    await expect(page.get_by_label("创建日期从")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_role("alert")).to_contain_text("筛选条件有误")
    # A range that ends before it starts, and one that holds nothing.
    await page.goto(f"{console.url}/notifications?dateFrom=2024-02-01&dateTo=2024-01-01")
    await expect(page.locator("#dateTo-error")).to_have_text("结束日期不能早于开始日期")
    await page.goto(f"{console.url}/notifications?dateFrom=2024-01-01&dateTo=2024-01-31")
    await expect(page.locator(".empty")).to_contain_text("没有符合条件的通知")
