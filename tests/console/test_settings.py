"""系统设置 in Chromium: an admin reads the configuration, never a secret; others are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from tests.conftest import BACKENDS, TEST_SECRET_KEY
from tests.console.conftest import Console, Staff, serve_console
from tests.live import STAFF_PASSWORD

APP_SECRET = "app-secret-for-the-settings-page-0001"
PUSH_TOKEN = "push-token-for-the-settings-page-0002"
AES_KEY = "AesKeyForTheSettingsPage0123456789abcdefghi"  # 43 characters
ACTION_TEMPLATE = "tmpl-settings-action"
SECRETS = (APP_SECRET, PUSH_TOKEN, AES_KEY, TEST_SECRET_KEY, STAFF_PASSWORD)


@pytest.fixture(scope="module", params=BACKENDS)
async def console(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Console]:
    """conftest's served app, with every secret the settings could hold set to a value the
    page must not show, and a configured template with its own field map."""
    staff = [Staff("admin1", "admin"), Staff("manager1", "manager"), Staff("advisor1")]
    async with serve_console(
        request,
        tmp_path_factory,
        staff,
        WECHAT_APP_ID="wx1234567890abcdef",
        WECHAT_APP_SECRET=APP_SECRET,
        WECHAT_PUSH_TOKEN=PUSH_TOKEN,
        WECHAT_PUSH_AES_KEY=AES_KEY,
        WECHAT_TEMPLATE_CUSTOMER_ACTION=ACTION_TEMPLATE,
        WECHAT_TEMPLATE_CUSTOMER_ACTION_FIELDS='{"title": "thing9", "time": "time8"}',
        WECHAT_LONG_TERM_TEMPLATES=f'["{ACTION_TEMPLATE}"]',
        POOL_DAILY_CLAIM_LIMIT="7",
        POOL_HOLDING_CAP="120",
    ) as console:
        yield console


async def test_an_admin_reads_the_settings_without_any_secret(console: Console, page: Page) -> None:
    await console.sign_in(page, "admin1")
    await page.get_by_role("link", name="设置", exact=True).click()
    await expect(page.get_by_role("heading", name="系统设置")).to_be_visible()
    wechat = page.locator("section", has=page.get_by_role("heading", name="微信小程序"))
    await expect(wechat).to_contain_text("wx1234567890abcdef")
    await expect(wechat).to_contain_text("https://api.weixin.qq.com")
    await expect(wechat).to_contain_text("stable_token")
    await expect(wechat.locator("dd", has_text="已配置")).to_have_count(3)
    templates = page.locator(".templates-table tbody tr")
    await expect(templates).to_have_count(3)
    await expect(templates.first).to_contain_text(ACTION_TEMPLATE)
    await expect(templates.first).to_contain_text("长期订阅")
    await expect(templates.first).to_contain_text("标题 (title) → thing9")
    await expect(templates.nth(1)).to_contain_text("未配置")
    await expect(templates.nth(1)).to_contain_text("客户 (customer_name) → thing1")
    pool = page.locator("section", has=page.get_by_role("heading", name="公海规则"))
    await expect(pool).to_contain_text("7 个")
    await expect(pool).to_contain_text("120 个")
    await expect(pool).to_contain_text("15 天")
    channel = page.locator("section", has=page.get_by_role("heading", name="通知通道"))
    await expect(channel).to_contain_text("直接发送订阅消息")
    await expect(channel).to_contain_text("6 次")
    await expect(page.get_by_role("heading", name="接口限流")).to_be_visible()
    html = await page.content()
    for secret in SECRETS:
        assert secret not in html
    assert "argon2" not in html
    await console.screenshot(page, "settings-1280")


@pytest.mark.parametrize("username", ["manager1", "advisor1"])
async def test_only_an_admin_may_see_the_settings(
    console: Console, page: Page, username: str
) -> None:
    await console.sign_in(page, username)
    await expect(page.get_by_role("link", name="设置", exact=True)).to_have_count(0)
    response = await page.goto(f"{console.url}/settings")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("只有系统管理员可以查看系统设置")
    html = await page.content()
    assert APP_SECRET not in html and "wx1234567890abcdef" not in html
