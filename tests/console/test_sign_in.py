"""Signing in to the console, the frame by role, signing out, CSRF and escaping, in Chromium."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Locator, Page, expect

from tests.console.conftest import XSS_NAME, Console
from tests.live import STAFF_PASSWORD, run_cli

ADVISOR_MENU = ["首页", "客户", "公海", "通知"]
ADMIN_MENU = ["首页", "客户", "公海", "导入导出", "通知", "员工", "设置"]


def menu(page: Page) -> Locator:
    """The menu's labels."""
    return page.get_by_role("navigation", name="主菜单").locator("a .label")


async def test_login_page_is_chinese_and_labelled(console: Console, page: Page) -> None:
    await page.goto(f"{console.url}/login")
    await expect(page.get_by_label("用户名")).to_be_visible()
    await expect(page.get_by_label("密码")).to_have_attribute("type", "password")
    await expect(page.get_by_role("button", name="登录")).to_be_visible()
    await console.screenshot(page, "login-1280")
    await page.set_viewport_size({"width": 768, "height": 1024})
    await console.screenshot(page, "login-768")


async def test_advisor_signs_in_by_keyboard_and_sees_its_menu(console: Console, page: Page) -> None:
    await page.goto(f"{console.url}/login")
    await page.get_by_label("用户名").focus()
    await page.keyboard.type("advisor1")
    await page.keyboard.press("Tab")
    await page.keyboard.type("correct-horse-battery")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{console.url}/")
    await expect(page.get_by_role("heading", name="首页")).to_be_visible()
    await expect(menu(page)).to_have_text(ADVISOR_MENU)
    await expect(page.locator(".topbar")).to_contain_text("advisor1")
    await expect(page.locator(".role-tag")).to_have_text("员工")
    await expect(page.locator('a[data-menu="pool"]')).to_have_attribute("href", "/pool")
    cookie = next(c for c in await page.context.cookies() if c["name"] == "wxcrm_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    await console.screenshot(page, "frame-advisor-1280")
    await page.set_viewport_size({"width": 768, "height": 1024})
    await expect(page.get_by_role("button", name="退出")).to_be_in_viewport()
    await console.screenshot(page, "frame-advisor-768")


async def test_admin_and_manager_see_more_of_the_menu(console: Console, page: Page) -> None:
    await console.sign_in(page, "admin1")
    await expect(menu(page)).to_have_text(ADMIN_MENU)
    await expect(page.locator(".role-tag")).to_have_text("系统管理员")
    await console.screenshot(page, "frame-admin-1280")
    await page.context.clear_cookies()
    await console.sign_in(page, "manager1")
    await expect(menu(page)).to_have_text(["首页", "客户", "公海", "导入导出", "通知"])
    await expect(page.locator(".role-tag")).to_have_text("经理")


async def test_wrong_password_shows_the_message_on_the_form(console: Console, page: Page) -> None:
    await console.sign_in(page, "advisor1", "not-the-password")
    await expect(page.get_by_role("alert")).to_have_text("用户名或密码错误")
    await expect(page.get_by_label("用户名")).to_have_value("advisor1")
    await expect(page.get_by_label("密码")).to_have_value("")
    assert "wxcrm_console" not in {c["name"] for c in await page.context.cookies()}
    response = await page.goto(f"{console.url}/")
    assert response is not None
    await expect(page).to_have_url(f"{console.url}/login")


async def test_the_api_login_limits_hold_for_the_console(console: Console, page: Page) -> None:
    for _ in range(5):
        await console.sign_in(page, "guessed", "wrong-guess")
        await expect(page.get_by_role("alert")).to_have_text("用户名或密码错误")
    await console.sign_in(page, "guessed")  # the right password, but the account is locked
    await expect(page.get_by_role("alert")).to_contain_text("频繁")
    await expect(page).to_have_url(f"{console.url}/login")


async def test_a_suspended_account_is_signed_out_at_once(console: Console, page: Page) -> None:
    await console.sign_in(page, "leaver")
    await expect(page.get_by_role("heading", name="首页")).to_be_visible()
    code, _, err = await run_cli("users", "disable", "leaver", env=console.env)
    assert code == 0, err
    await page.reload()
    await expect(page).to_have_url(f"{console.url}/login")
    await console.sign_in(page, "leaver")
    await expect(page.get_by_role("alert")).to_have_text("账号已停用")
    await expect(page).to_have_url(f"{console.url}/login")


async def test_logout_ends_the_session(console: Console, page: Page) -> None:
    await console.sign_in(page, "advisor1")
    kept = next(c for c in await page.context.cookies() if c["name"] == "wxcrm_console")
    await page.get_by_role("button", name="退出").click()
    await expect(page).to_have_url(f"{console.url}/login")
    await page.goto(f"{console.url}/")
    await expect(page).to_have_url(f"{console.url}/login")
    # A copy of the session cookie taken before signing out is worth nothing after it:
    # neither in the console nor as the API's bearer token.
    await page.context.add_cookies([kept])
    await page.goto(f"{console.url}/customers")
    await expect(page).to_have_url(f"{console.url}/login")
    api = await page.request.get(
        f"{console.url}/api/auth/me", headers={"Authorization": f"Bearer {kept['value']}"}
    )
    assert api.status == 401
    assert (await api.json())["message"] == "已退出登录，请重新登录"


async def test_a_post_without_the_csrf_token_is_refused(console: Console, page: Page) -> None:
    await console.sign_in(page, "advisor1")
    # The browser's own cookies go along: only the token is missing or wrong.
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        refused = await page.request.post(f"{console.url}/logout", headers=headers, max_redirects=0)
        assert refused.status == 403
        assert "CSRF 校验失败" in await refused.text()
    refused = await page.request.post(
        f"{console.url}/login",
        form={"username": "advisor1", "password": "correct-horse-battery"},
        max_redirects=0,
    )
    assert refused.status == 403
    # Still signed in: nothing changed.
    await page.goto(f"{console.url}/")
    await expect(page.get_by_role("heading", name="首页")).to_be_visible()
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    accepted = await page.request.post(
        f"{console.url}/logout", headers={"X-CSRF-Token": token}, max_redirects=0
    )
    assert accepted.status == 303


async def test_a_name_that_is_markup_shows_as_text(console: Console, page: Page) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await console.sign_in(page, "xss")
    await expect(page.locator(".user-name")).to_have_text(XSS_NAME)
    assert await page.locator(".topbar img").count() == 0
    assert dialogs == []


async def test_behind_a_tls_proxy_the_session_cookies_are_secure(console: Console) -> None:
    """A proxy that ends TLS says so in X-Forwarded-Proto (believed from loopback and
    TRUSTED_PROXIES); the cookies then carry Secure, and only then."""
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        for proto, secure in (("https", True), ("http", False)):
            http.cookies.clear()
            form = (await http.get("/login")).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert token is not None
            answer = await http.post(
                "/login",
                data={"username": "advisor1", "password": STAFF_PASSWORD, "csrf_token": token[1]},
                headers={"X-Forwarded-Proto": proto},
            )
            assert answer.status_code == 303
            cookies = answer.headers.get_list("set-cookie")
            assert {c.split("=", 1)[0] for c in cookies} >= {"wxcrm_console", "wxcrm_csrf"}
            assert all(("; secure" in c.lower()) is secure for c in cookies), cookies
