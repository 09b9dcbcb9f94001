"""客户详情 / 编辑 / 新建 in Chromium: a manager reads a customer, assigns, freezes and
unfreezes it; an advisor follows up its own and cannot open another's; new and edited
customers with bad values refused beside their fields; an admin deletes; markup shows as
text; a form without its CSRF token changes nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.console.conftest import XSS_NAME, Console, assert_fits_a_tablet
from tests.factories import mp_headers
from tests.live import staff_token

PHONE_FORMAT = "手机号格式不正确（需为中国大陆11位手机号）"


@pytest.fixture(scope="module")
async def customers(console: Console) -> AsyncIterator[dict[str, str]]:
    """Customers made through the API, by a short name: their ids."""
    ids: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:

        async def add(key: str, username: str, body: dict[str, Any]) -> None:
            token = await staff_token(http, username)
            response = await http.post(
                "/api/customers", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
            ids[key] = response.json()["data"]["_id"]

        # A manager's new customer starts in the public pool.
        await add("pool", "manager1", {
            "name": "周阿姨", "phone": "13944445555", "serviceCategory": "月嫂",
            "leadSource": "美团", "leadLevel": "A类", "salaryBudget": 8000,
            "expectedStartDate": "2030-03-01", "familySize": 4, "area": "杭州西湖区",
            "needWorkContent": "照顾新生儿\n做三餐", "remarks": "下午方便接电话",
        })  # fmt: skip
        await add("own", "advisor1", {
            "name": "赵女士", "phone": "13911112222", "contractStatus": "匹配中",
            "leadLevel": "B类", "serviceCategory": "住家保姆",
        })  # fmt: skip
        await add("others", "xss", {"name": "李先生", "phone": "13922223333"})
        await add("markup", "xss", {"name": XSS_NAME, "phone": "13933334444",
                                    "remarks": XSS_NAME, "wechatId": XSS_NAME})  # fmt: skip
        await add("doomed", "manager1", {"name": "待删除", "phone": "13955556666"})
    yield ids


async def api(console: Console, username: str, method: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, username)
        response = await http.request(method, path, headers={"Authorization": f"Bearer {token}"})
        return response


async def open_record(console: Console, page: Page, customer_id: str) -> None:
    await page.goto(f"{console.url}/customers/{customer_id}")
    await expect(page.locator("#next-follow-up")).to_be_visible()


async def test_a_manager_reads_assigns_freezes_and_unfreezes(
    console: Console, customers: dict[str, str], page: Page
) -> None:
    await console.sign_in(page, "manager1")
    await open_record(console, page, customers["pool"])
    await expect(page.get_by_role("heading", name="周阿姨", level=1)).to_be_visible()
    basic = page.locator("section", has=page.get_by_role("heading", name="基本信息"))
    await expect(basic).to_contain_text("139 4444 5555")
    await expect(basic).to_contain_text("美团")
    await expect(basic).to_contain_text("杭州西湖区")
    await expect(basic).to_contain_text(re.compile(r"CUS\d{11}"))
    needs = page.locator("section", has=page.get_by_role("heading", name="家政需求"))
    await expect(needs).to_contain_text("8000 元/月")
    await expect(needs).to_contain_text("2030-03-01")
    await expect(needs).to_contain_text("照顾新生儿")
    deal = page.locator("section", has=page.get_by_role("heading", name="成交"))
    await expect(deal.locator(".level")).to_have_text("A类")
    await expect(page.locator(".record-remarks")).to_have_text("下午方便接电话")
    await expect(page.locator("#record-owner")).to_have_text("公海")
    await expect(page.locator("#next-follow-up")).to_have_text("未安排")
    timeline = page.locator(".timeline-item")
    await expect(timeline.last).to_contain_text("创建客户")
    await expect(timeline.last).to_contain_text("manager1")
    content = await page.content()
    assert "openid" not in content.lower()
    await console.screenshot(page, "customer-detail-1280")
    await page.set_viewport_size({"width": 768, "height": 1024})
    await expect(page.get_by_role("button", name="分配")).to_be_visible()
    await console.screenshot(page, "customer-detail-768")
    await page.set_viewport_size({"width": 1280, "height": 800})

    # 分配: no advisor chosen is told beside the select; then assigned.
    await page.get_by_role("button", name="分配").click()
    dialog = page.locator("#assign-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name="确定分配").click()
    dialog = page.locator("#assign-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("#assign-to-error")).to_have_text("请选择顾问")
    await expect(dialog.get_by_label("分配给")).to_have_attribute("aria-invalid", "true")
    await dialog.get_by_label("分配给").select_option(label="advisor1（advisor1）")
    await dialog.get_by_label("分配原因（选填）").fill("客户指定要 advisor1 跟进")
    await dialog.get_by_role("button", name="确定分配").click()
    await expect(page.locator(".toast-item")).to_have_text("已将客户分配给 advisor1")
    await expect(page.locator("#assign-dialog")).to_be_hidden()
    await expect(page.locator("#record-owner")).to_have_text("advisor1")
    first = page.locator(".timeline-item").first
    await expect(first).to_contain_text("分配：公海 → advisor1")
    await expect(first).to_contain_text("原因：客户指定要 advisor1 跟进")
    await expect(first).to_contain_text("manager1")

    # 冻结 with a reason; a frozen customer cannot be assigned (the service says so).
    await page.get_by_role("button", name="冻结").click()
    await page.locator("#freeze-dialog").get_by_role("button", name="确定冻结").click()
    await expect(page.locator("#freeze-reason-error")).to_have_text("请填写冻结原因")
    await page.get_by_label("冻结原因").fill("客户出国三个月")
    await page.get_by_role("button", name="确定冻结").click()
    await expect(page.locator(".toast-item")).to_have_text("已冻结客户")
    await expect(page.locator(".record-frozen")).to_contain_text("客户出国三个月")
    await expect(page.locator(".record-title")).to_contain_text("已冻结")
    await page.get_by_role("button", name="分配").click()
    await page.get_by_label("分配给").select_option(label="guessed（guessed）")
    await page.get_by_role("button", name="确定分配").click()
    await expect(page.locator("#assign-dialog")).to_be_visible()
    await expect(page.locator("#assign-dialog [role=alert]")).to_have_text("客户已冻结，不能分配")
    await page.locator("#assign-dialog").get_by_role("button", name="取消").click()
    await expect(page.locator("#record-owner")).to_have_text("advisor1")

    # 解冻 needs its reason too; both stay in the timeline with who and why.
    await page.get_by_role("button", name="解冻").click()
    await page.get_by_role("button", name="确定解冻").click()
    await expect(page.locator("#unfreeze-reason-error")).to_have_text("请填写解冻原因")
    await page.get_by_label("解冻原因").fill("客户已回国")
    await page.get_by_role("button", name="确定解冻").click()
    await expect(page.locator(".toast-item")).to_have_text("已解冻客户")
    await expect(page.locator(".record-frozen")).to_have_count(0)
    await expect(page.get_by_role("button", name="冻结")).to_be_visible()
    freezes = page.locator(".timeline-freeze")
    await expect(freezes.nth(0)).to_contain_text("解冻客户")
    await expect(freezes.nth(0)).to_contain_text("原因：客户已回国")
    await expect(freezes.nth(1)).to_contain_text("冻结客户")
    await expect(freezes.nth(1)).to_contain_text("原因：客户出国三个月")
    await expect(freezes.nth(1)).to_contain_text("manager1")

    # 释放到公海 needs a reason.
    await page.get_by_role("button", name="释放到公海").click()
    await page.get_by_role("button", name="确定释放").click()
    await expect(page.locator("#release-reason-error")).to_have_text("请填写释放原因")
    await page.get_by_label("释放原因").fill("客户暂不需要")
    await page.get_by_role("button", name="确定释放").click()
    await expect(page.locator(".toast-item")).to_have_text("已释放到公海")
    await expect(page.locator("#record-owner")).to_have_text("公海")
    first = page.locator(".timeline-item").first
    await expect(first).to_contain_text("释放到公海（原负责人 advisor1）")
    await expect(first).to_contain_text("原因：客户暂不需要")


async def test_an_advisor_follows_up_its_own_customer(
    console: Console, customers: dict[str, str], page: Page
) -> None:
    await console.sign_in(page, "advisor1")
    await open_record(console, page, customers["own"])
    await expect(page.get_by_role("heading", name="赵女士", level=1)).to_be_visible()
    actions = page.locator(".page-actions")
    await expect(actions.get_by_role("link", name="编辑")).to_be_visible()
    await expect(actions.get_by_role("button", name="释放到公海")).to_be_visible()
    for refused in ("分配", "冻结", "删除"):
        await expect(actions.get_by_role("button", name=refused)).to_have_count(0)

    # No content: told beside the field, nothing written.
    await page.get_by_role("button", name="添加跟进").click()
    await expect(page.locator("#fu-content-error")).to_have_text("请填写跟进内容")
    await expect(page.get_by_label("跟进内容")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".timeline-followUp")).to_have_count(0)

    planned = datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=3)
    await page.get_by_label("跟进方式").select_option("微信")
    await page.get_by_label("跟进内容").fill("微信沟通，客户想要住家保姆，下周面试")
    await page.get_by_label("下次跟进日期").fill(planned.isoformat())
    await page.get_by_role("button", name="添加跟进").click()
    await expect(page.locator(".toast-item")).to_have_text("已添加跟进记录")
    first = page.locator(".timeline-item").first
    await expect(first).to_contain_text("跟进 · 微信")
    await expect(first).to_contain_text("微信沟通，客户想要住家保姆，下周面试")
    await expect(first).to_contain_text(f"下次跟进：{planned.isoformat()}")
    await expect(first).to_contain_text("advisor1")
    await expect(page.locator("#next-follow-up")).to_have_text(planned.isoformat())
    await expect(page.get_by_label("跟进内容")).to_have_value("")
    await page.reload()
    await expect(page.locator(".timeline-followUp")).to_have_count(1)
    await expect(page.locator("#next-follow-up")).to_have_text(planned.isoformat())

    # Another advisor's customer, or no customer at all, is not there.
    for path in (customers["others"], f"{customers['others']}/edit", "no-such-id", "0" * 24):
        response = await page.goto(f"{console.url}/customers/{path}")
        assert response is not None and response.status == 404, path
        await expect(page.get_by_role("alert")).to_contain_text("客户不存在")
    token = await csrf(page, console, customers["own"])
    refused = await page.request.post(
        f"{console.url}/customers/{customers['others']}/follow-ups",
        form={"csrf_token": token, "method": "电话", "content": "不该写入"},
    )
    assert refused.status == 404
    answer = await api(console, "xss", "GET", f"/api/customers/{customers['others']}")
    assert all(event["type"] != "followUp" for event in answer.json()["data"]["timeline"])


async def test_a_new_customer_with_a_bad_phone_is_refused_then_created(
    console: Console, customers: dict[str, str], page: Page
) -> None:
    await console.sign_in(page, "advisor1")
    await page.goto(f"{console.url}/customers/new")
    await expect(page.get_by_role("heading", name="新建客户")).to_be_visible()
    await expect(page.get_by_label("线索来源")).to_have_value("其他")
    await console.screenshot(page, "customer-new-1280")
    await page.get_by_label("姓名").fill("孙女士")
    await page.get_by_label("手机号").fill("12345")
    await page.get_by_label("服务类别").select_option("保洁")
    await page.get_by_label("薪资预算（元/月）").fill("6000")
    await page.get_by_role("button", name="创建客户").click()
    phone = page.get_by_label("手机号")
    await expect(phone).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#c-phone-error")).to_have_text(PHONE_FORMAT)
    await expect(page.get_by_label("姓名")).to_have_value("孙女士")
    await expect(page.get_by_label("服务类别")).to_have_value("保洁")
    assert await found(console, "孙女士") == 0

    # A phone another customer has: told beside the phone too.
    await phone.fill("139 1111 2222")
    await page.get_by_role("button", name="创建客户").click()
    await expect(page.locator("#c-phone-error")).to_have_text("该手机号已被其他客户使用")
    assert await found(console, "孙女士") == 0

    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    refused = await page.request.post(
        f"{console.url}/customers/new",
        form={"csrf_token": token or "", "name": "孙女士", "phone": "1"},
    )
    assert refused.status == 400
    assert PHONE_FORMAT in await refused.text()

    await page.get_by_label("手机号").fill("139 6666 7777")
    await page.get_by_role("button", name="创建客户").click()
    await expect(page.locator(".toast-item")).to_have_text("已创建客户 孙女士")
    await expect(page).to_have_url(re.compile(r"/customers/[0-9a-f]{24}$"))
    await expect(page.get_by_role("heading", name="孙女士", level=1)).to_be_visible()
    await expect(page.locator("#record-owner")).to_have_text("advisor1")
    basic = page.locator("section", has=page.get_by_role("heading", name="基本信息"))
    await expect(basic).to_contain_text("139 6666 7777")
    await expect(basic).to_contain_text("保洁")
    assert await found(console, "孙女士") == 1


async def test_an_advisor_edits_its_customer_within_the_rules(
    console: Console, customers: dict[str, str], page: Page
) -> None:
    await console.sign_in(page, "advisor1")
    await open_record(console, page, customers["own"])
    await page.locator(".page-actions").get_by_role("link", name="编辑").click()
    await expect(page.get_by_role("heading", name="编辑客户")).to_be_visible()
    await expect(page.get_by_label("姓名")).to_have_value("赵女士")
    await expect(page.get_by_label("手机号")).to_have_value("13911112222")
    await expect(page.get_by_label("签约状态")).to_have_value("匹配中")
    await console.screenshot(page, "customer-edit-1280")

    await page.get_by_label("薪资预算（元/月）").fill("60000")
    await page.get_by_role("button", name="保存").click()
    await expect(page.locator("#c-salaryBudget-error")).to_have_text("薪资预算不能高于50000元")
    # Only managers grade a customer O类: the service's word, beside the level.
    await page.get_by_label("薪资预算（元/月）").fill("9000")
    await page.get_by_label("线索等级").select_option("O类")
    await page.get_by_role("button", name="保存").click()
    await expect(page.locator("#c-leadLevel-error")).to_have_text(
        "只有管理员和经理可以手动设置线索等级为O类"
    )
    answer = await api(console, "advisor1", "GET", f"/api/customers/{customers['own']}")
    assert answer.json()["data"]["salaryBudget"] is None

    await page.get_by_label("线索等级").select_option("A类")
    await page.get_by_label("签约状态").select_option("已签约")
    await page.get_by_role("textbox", name="备注", exact=True).fill("已签约，下周一上户")
    await page.get_by_label("微信号").fill("zhao_wx")
    await page.get_by_role("button", name="保存").click()
    await expect(page.locator(".toast-item")).to_have_text("已保存客户资料")
    await expect(page).to_have_url(f"{console.url}/customers/{customers['own']}")
    await expect(page.locator(".record-title .tag").first).to_have_text("已签约")
    await expect(page.locator(".record-title .level")).to_have_text("A类")
    await expect(page.locator(".record-remarks")).to_have_text("已签约，下周一上户")
    needs = page.locator("section", has=page.get_by_role("heading", name="家政需求"))
    await expect(needs).to_contain_text("9000 元/月")
    basic = page.locator("section", has=page.get_by_role("heading", name="基本信息"))
    await expect(basic).to_contain_text("zhao_wx")

    # A signed customer stays with its advisor: the pool's refusal, in the dialog.
    await page.get_by_role("button", name="释放到公海").click()
    await page.get_by_label("释放原因").fill("不想跟了")
    await page.get_by_role("button", name="确定释放").click()
    await expect(page.locator("#release-dialog [role=alert]")).to_have_text(
        "已签约客户不能释放到公海"
    )
    await expect(page.locator("#release-dialog")).to_be_visible()
    await expect(page.get_by_label("释放原因")).to_have_value("不想跟了")


async def test_the_timeline_shows_a_mini_program_action_and_a_claim(
    console: Console, customers: dict[str, str], page: Page
) -> None:
    """A customer who viewed guessed's résumé in the mini program (a new lead of guessed's),
    released to the pool by a manager and claimed from it by advisor1: each in the timeline."""
    openid = "o-record-timeline"
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        guessed = await staff_token(http, "guessed")
        me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {guessed}"})
        action = await http.post(
            "/api/customer/action",
            headers=mp_headers(openid),
            json={"customerId": openid, "advisorId": me.json()["data"]["_id"],
                  "actionType": "view_resume", "actionData": {"resumeId": "R2001"},
                  "customerName": "吴女士", "customerPhone": "13988880001"},
        )  # fmt: skip
        assert action.status_code == 200, action.text
        assert action.json()["data"]["customerCreated"] is True
        customer_id = action.json()["data"]["customerId"]
        manager = await staff_token(http, "manager1")
        released = await http.post(
            f"/api/customers/{customer_id}/release-to-pool",
            json={"reason": "客户想换顾问"},
            headers={"Authorization": f"Bearer {manager}"},
        )
        assert released.status_code == 200, released.text
        advisor = await staff_token(http, "advisor1")
        claimed = await http.post(
            "/api/customers/public-pool/claim",
            json={"customerIds": [customer_id]},
            headers={"Authorization": f"Bearer {advisor}"},
        )
        assert claimed.json()["data"]["success"] == 1, claimed.text

    await console.sign_in(page, "advisor1")
    await open_record(console, page, customer_id)
    await expect(page.get_by_role("heading", name="吴女士", level=1)).to_be_visible()
    await expect(page.locator("#record-owner")).to_have_text("advisor1")
    timeline = page.locator(".timeline-item")
    await expect(timeline.first).to_contain_text("advisor1 从公海领取")
    await expect(timeline.nth(1)).to_contain_text("释放到公海（原负责人 guessed）")
    await expect(timeline.nth(1)).to_contain_text("原因：客户想换顾问")
    acted = page.locator(".timeline-action")
    await expect(acted).to_have_count(1)
    await expect(acted.locator(".timeline-title")).to_have_text("客户在小程序中查看了顾问简历")
    await expect(acted.locator(".timeline-meta")).to_contain_text("顾问 guessed")
    await expect(timeline.last).to_contain_text("创建客户")
    await expect(timeline.last).to_contain_text("guessed")  # a lead is made as its advisor's
    assert openid not in await page.content()

    # At a tablet's width the record does not scroll sideways.
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.reload()
    await expect(page.locator(".timeline-action")).to_have_count(1)
    await assert_fits_a_tablet(page)


async def test_an_admin_deletes_a_customer(
    console: Console, customers: dict[str, str], page: Page
) -> None:
    await console.sign_in(page, "manager1")
    await open_record(console, page, customers["doomed"])
    await expect(page.locator(".page-actions").get_by_role("button", name="删除")).to_have_count(0)
    token = await csrf(page, console, customers["doomed"])
    refused = await page.request.post(
        f"{console.url}/customers/{customers['doomed']}/delete", form={"csrf_token": token}
    )
    assert refused.status == 403

    await page.context.clear_cookies()
    await console.sign_in(page, "admin1")
    await open_record(console, page, customers["doomed"])
    confirmations: list[str] = []

    async def accept(dialog: Any) -> None:
        confirmations.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await page.locator(".page-actions").get_by_role("button", name="删除").click()
    await expect(page.locator(".toast-item")).to_have_text("已删除客户 待删除")
    await expect(page).to_have_url(f"{console.url}/customers")
    assert confirmations and "待删除" in confirmations[0]
    response = await page.goto(f"{console.url}/customers/{customers['doomed']}")
    assert response is not None and response.status == 404

    # `back` leads to a customers page of this site only.
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token_api = await staff_token(http, "admin1")
        auth = {"Authorization": f"Bearer {token_api}"}
        made = []
        for phone in ("13977770001", "13977770002"):
            answer = await http.post(
                "/api/customers", json={"name": "又一个", "phone": phone}, headers=auth
            )
            made.append(answer.json()["data"]["_id"])
    token = await csrf(page, console, made[0])
    for customer_id, back, where in (
        (made[0], "/customers?keyword=%E5%8F%88", "/customers?keyword=%E5%8F%88"),
        (made[1], "//evil.example/customers", "/customers"),
    ):
        answer = await page.request.post(
            f"{console.url}/customers/{customer_id}/delete",
            form={"csrf_token": token, "back": back},
            max_redirects=0,
        )
        assert answer.status == 303
        assert answer.headers["location"] == where


async def test_markup_in_a_customer_shows_as_text(
    console: Console, customers: dict[str, str], page: Page
) -> None:
    alerts: list[str] = []
    page.on("dialog", lambda dialog: alerts.append(dialog.message))
    await console.sign_in(page, "manager1")
    await open_record(console, page, customers["markup"])
    await expect(page.get_by_role("heading", level=1)).to_have_text(XSS_NAME)
    await expect(page.locator(".record-remarks")).to_have_text(XSS_NAME)
    await expect(page.locator("#record-owner")).to_have_text(XSS_NAME)  # the advisor's name
    assert await page.locator("#content img").count() == 0
    await page.locator(".page-actions").get_by_role("link", name="编辑").click()
    await expect(page.get_by_label("姓名")).to_have_value(XSS_NAME)
    await expect(page.get_by_role("textbox", name="备注", exact=True)).to_have_value(XSS_NAME)
    assert await page.locator("#content img").count() == 0
    assert alerts == []


async def test_a_post_without_its_csrf_token_changes_nothing(
    console: Console, customers: dict[str, str], page: Page
) -> None:
    await console.sign_in(page, "manager1")
    await open_record(console, page, customers["others"])
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    customer = customers["others"]
    async with httpx.AsyncClient(base_url=console.url, cookies=cookies, timeout=10) as http:
        for action, form in (
            ("freeze", {"reason": "没有令牌"}),
            ("follow-ups", {"method": "电话", "content": "没有令牌"}),
            ("edit", {"name": "改名", "phone": "13922223333", "contractStatus": "待定"}),
            ("delete", {}),
        ):
            refused = await http.post(f"/customers/{customer}/{action}", data=form)
            assert refused.status_code == 403, action
            assert "CSRF" in refused.text
    answer = await api(console, "manager1", "GET", f"/api/customers/{customer}")
    data = answer.json()["data"]
    assert data["name"] == "李先生"
    assert data["isFrozen"] is False
    assert all(event["type"] != "followUp" for event in data["timeline"])


async def csrf(page: Page, console: Console, customer_id: str) -> str:
    """The signed-in page's CSRF token (from a customer page it may open)."""
    await open_record(console, page, customer_id)
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    return token


async def found(console: Console, keyword: str) -> int:
    async with httpx.AsyncClient(base_url=console.url, timeout=10) as http:
        token = await staff_token(http, "manager1")
        response = await http.get(
            "/api/customers",
            params={"search": keyword},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        return int(response.json()["data"]["total"])
