"""员工管理 in Chromium: an admin lists, creates, suspends and resets accounts; nobody else
may; a bad value or a missing CSRF token changes nothing."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Locator, Page, expect

from tests.console.conftest import XSS_NAME, Console
from tests.live import STAFF_PASSWORD, create_staff

PHONE_FORMAT = "手机号格式不正确（需为中国大陆11位手机号）"


def row(page: Page, username: str) -> Locator:
    return page.locator(f'tr[data-username="{username}"]')


async def open_staff(console: Console, page: Page, search: str = "") -> None:
    await page.goto(f"{console.url}/staff" + (f"?search={search}" if search else ""))
    await expect(page.get_by_role("heading", name="员工管理")).to_be_visible()


async def fill_new_account(page: Page, username: str, phone: str) -> None:
    await page.get_by_role("link", name="新建员工").click()
    await expect(page.get_by_role("heading", name="新建员工")).to_be_visible()
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("姓名").fill("王阿姨")
    await page.get_by_label("密码").fill("a-new-password")
    await page.get_by_label("角色").select_option("manager")
    await page.get_by_label("手机号").fill(phone)
    await page.get_by_label("部门").fill("上海一部")
    await page.get_by_role("button", name="创建").click()


async def test_admin_creates_an_account_that_then_signs_in(
    console: Console, page: Page, browser: Browser
) -> None:
    await console.sign_in(page, "admin1")
    await page.locator('a[data-menu="staff"]').click()
    await expect(page.get_by_role("heading", name="员工管理")).to_be_visible()
    headers = page.locator("thead th")
    await expect(headers).to_have_text(
        ["姓名", "用户名", "手机号", "角色", "部门", "状态", "微信", "创建时间", "操作"]
    )
    await fill_new_account(page, "wang", "+86 139-0013-9000")
    await expect(page.get_by_role("status")).to_have_text("员工账号已创建")
    created = row(page, "wang")
    await expect(created).to_contain_text("王阿姨")
    await expect(created).to_contain_text("139 0013 9000")
    await expect(created).to_contain_text("经理")
    await expect(created).to_contain_text("上海一部")
    await expect(created).to_contain_text("正常")
    await expect(created).to_contain_text("未绑定")
    await expect(created.locator("td").nth(7)).to_have_text(
        re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")
    )
    await console.screenshot(page, "staff-admin-1280")

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        newcomer = await context.new_page()
        await console.sign_in(newcomer, "wang", "a-new-password")
        await expect(newcomer.get_by_role("heading", name="首页")).to_be_visible()
        await expect(newcomer.locator(".role-tag")).to_have_text("经理")
    finally:
        await context.close()


async def test_the_list_filters_live_in_the_url(console: Console, page: Page) -> None:
    await console.sign_in(page, "admin1")
    await open_staff(console, page)
    await page.get_by_label("搜索").fill("advisor1")
    await page.get_by_label("状态").select_option("active")
    await page.get_by_role("button", name="查询").click()
    await expect(page).to_have_url(re.compile(r"/staff\?search=advisor1&.*status=active"))
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator(".pagination .total")).to_have_text("共 1 条")
    # Junk in the URL is read leniently: ignored, every account listed, page 1 of 20.
    await open_staff(console, page)
    everyone = await page.locator(".pagination .total").inner_text()
    listed = await page.locator("tbody tr").count()
    assert everyone.startswith("共 ") and listed > 1
    response = await page.goto(f"{console.url}/staff?role=nonsense&status=gone&page=x&limit=7")
    assert response is not None and response.status == 200
    await expect(page.get_by_role("heading", name="员工管理")).to_be_visible()
    await expect(page.get_by_label("角色")).to_have_value("")
    await expect(page.get_by_label("角色").locator("option:checked")).to_have_text("全部角色")
    await expect(page.get_by_label("状态")).to_have_value("")
    await expect(page.get_by_label("状态").locator("option:checked")).to_have_text("全部状态")
    await expect(page.locator(".pagination .total")).to_have_text(everyone)
    await expect(page.locator("tbody tr")).to_have_count(listed)
    await expect(page.locator('input[name="limit"]')).to_have_count(0)


async def test_a_bad_phone_shows_beside_its_field_and_creates_nothing(
    console: Console, page: Page
) -> None:
    await console.sign_in(page, "admin1")
    await open_staff(console, page)
    await fill_new_account(page, "badphone", "12345")
    phone = page.get_by_label("手机号")
    await expect(phone).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#staff-phone-error")).to_have_text(PHONE_FORMAT)
    await expect(page.get_by_label("用户名")).to_have_value("badphone")
    await expect(page.get_by_label("密码")).to_have_value("")
    await open_staff(console, page, "badphone")
    await expect(page.locator("tbody")).to_contain_text("没有符合条件的员工")
    # A served 400, not a 200 page with a message: a script or a proxy sees the refusal.
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    refused = await page.request.post(
        f"{console.url}/staff",
        form={"csrf_token": token or "", "username": "x", "name": "", "password": "short"},
    )
    assert refused.status == 400
    assert "请填写姓名" in await refused.text()


async def test_suspending_an_account_ends_its_session_at_once(
    console: Console, page: Page, browser: Browser
) -> None:
    await create_staff(console.env, "quitter")
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        leaver = await context.new_page()
        await console.sign_in(leaver, "quitter")
        await expect(leaver.get_by_role("heading", name="首页")).to_be_visible()

        await console.sign_in(page, "admin1")
        await open_staff(console, page, "quitter")
        await row(page, "quitter").get_by_role("button", name="停用 quitter").click()
        await expect(page.get_by_role("status")).to_contain_text("员工已停用")
        await expect(row(page, "quitter")).to_contain_text("已停用")

        await leaver.reload()
        await expect(leaver).to_have_url(f"{console.url}/login")

        await row(page, "quitter").get_by_role("button", name="启用 quitter").click()
        await expect(page.get_by_role("status")).to_have_text("员工已启用")
        await expect(row(page, "quitter")).to_contain_text("正常")
    finally:
        await context.close()


async def test_admin_resets_a_password(console: Console, page: Page) -> None:
    await create_staff(console.env, "forgetful")
    await console.sign_in(page, "admin1")
    await open_staff(console, page, "forgetful")
    field = row(page, "forgetful").get_by_label("forgetful（forgetful）的新密码")
    await field.fill("short")
    await field.press("Enter")  # by keyboard
    field = row(page, "forgetful").get_by_label("forgetful（forgetful）的新密码")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(row(page, "forgetful").locator(".field-error")).to_have_text(
        "新密码长度不能少于8个字符"
    )
    await field.fill("brand-new-secret")
    await row(page, "forgetful").get_by_role("button", name="重置密码 forgetful").click()
    await expect(page.get_by_role("status")).to_contain_text("密码已重置")

    await page.context.clear_cookies()
    await console.sign_in(page, "forgetful", STAFF_PASSWORD)
    await expect(page.get_by_role("alert")).to_have_text("用户名或密码错误")
    await console.sign_in(page, "forgetful", "brand-new-secret")
    await expect(page.get_by_role("heading", name="首页")).to_be_visible()


async def test_advisors_and_managers_are_refused(console: Console, page: Page) -> None:
    for username in ("advisor1", "manager1"):
        await page.context.clear_cookies()
        await console.sign_in(page, username)
        assert await page.locator('a[data-menu="staff"]').count() == 0
        for path in ("/staff", "/staff/new"):
            response = await page.goto(f"{console.url}{path}")
            assert response is not None and response.status == 403
            await expect(page.get_by_role("alert")).to_contain_text("只有系统管理员可以管理员工")


async def test_a_form_posted_without_the_csrf_token_is_refused(
    console: Console, page: Page
) -> None:
    await create_staff(console.env, "target")
    await console.sign_in(page, "admin1")
    await open_staff(console, page, "target")
    action = await row(page, "target").locator("form[action$='/suspend']").get_attribute("action")
    assert action
    refused = await page.request.post(f"{console.url}{action}", form={"back": ""}, max_redirects=0)
    assert refused.status == 403
    assert "CSRF 校验失败" in await refused.text()
    refused = await page.request.post(
        f"{console.url}/staff",
        form={"username": "sneaky", "name": "x", "password": "long-enough", "role": "admin"},
        max_redirects=0,
    )
    assert refused.status == 403
    await open_staff(console, page, "target")
    await expect(row(page, "target")).to_contain_text("正常")
    await open_staff(console, page, "sneaky")
    await expect(page.locator("tbody")).to_contain_text("没有符合条件的员工")


async def test_a_name_that_is_markup_shows_as_text(console: Console, page: Page) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await console.sign_in(page, "admin1")
    await open_staff(console, page, "xss")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(row(page, "xss").locator("td").first).to_have_text(XSS_NAME)
    assert await page.locator("table img").count() == 0
    assert dialogs == []
