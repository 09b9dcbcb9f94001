"""The staff mini program's day, end to end over real HTTP: `wxcrm serve` with its delivery
worker, the WeChat simulator on loopback, staff made with the CLI.

An advisor logs in with a wx.login code and its phone, works one customer through list,
detail, follow-up, follow-up status and release to the pool; a manager assigns it back, and
the WeChat message the advisor receives opens a customer page that loads.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import ASSIGN_TEMPLATE, BACKENDS, SIM_APP_ID, SIM_SECRET
from tests.live import STAFF_PASSWORD, own_database, run_cli, served, server_env
from wxcrm.wechat.sim import SimControl

ADVISOR_PHONE = "13800000001"
MANAGER_PHONE = "13900000002"
CUSTOMER_PAGE = "pages/customer/detail"


async def add_staff(env: dict[str, str], username: str, role: str, phone: str) -> None:
    code, _, err = await run_cli(
        "users", "create", "--username", username, "--password", STAFF_PASSWORD,
        "--role", role, "--phone", phone, "--department", "销售一部", env=env,
    )  # fmt: skip
    assert code == 0, err


async def mini_program_login(
    http: httpx.AsyncClient, sim_control: SimControl, openid: str, phone: str
) -> dict[str, Any]:
    code = await sim_control.mint_login_code(openid)
    response = await http.post("/api/auth/miniprogram-login", json={"code": code, "phone": phone})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True and body["message"] == "小程序登录成功"
    return body["data"]


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The data of a staff mini-program success (the original's envelope)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True, body
    return body["data"]


async def wait_for_message(sim_control: SimControl, openid: str) -> dict[str, Any]:
    for _ in range(200):
        messages = await sim_control.messages(openid)
        if messages:
            return messages[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no WeChat message reached the advisor within 10 s")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_advisors_day_in_the_staff_mini_program(
    backend: str, tmp_path: Path, sim_url: str, sim_control: SimControl
) -> None:
    async with own_database(backend, tmp_path) as url:
        env = server_env(
            url,
            tmp_path,
            WECHAT_API_BASE=sim_url,
            WECHAT_APP_ID=SIM_APP_ID,
            WECHAT_APP_SECRET=SIM_SECRET,
            WECHAT_TEMPLATE_CUSTOMER_ASSIGNED=ASSIGN_TEMPLATE,
            WORKER_EMBEDDED="true",
            WORKER_POLL_SECONDS="0.05",
        )
        await add_staff(env, "xiaoli", "advisor", ADVISOR_PHONE)
        await add_staff(env, "wangjl", "manager", MANAGER_PHONE)
        async with (
            served(env, tmp_path) as api,
            httpx.AsyncClient(base_url=api.url, timeout=30) as http,
        ):
            # The phone as the mini program's getPhoneNumber gives it, with a country code.
            login = await mini_program_login(http, sim_control, "o-advisor-li", "+86 138-0000-0001")
            advisor = login["user"]
            assert (advisor["role"], advisor["roleLabel"]) == ("employee", "员工")
            assert advisor["department"] == "销售一部" and login["openid"] == "o-advisor-li"
            mine = {"Authorization": f"Bearer {login['access_token']}"}
            me = ok(await http.get("/api/auth/me", headers=mine))
            assert me["id"] == advisor["id"] and me["active"] is True

            # The advisor says yes to the assignment message's prompt (WeChat and the CRM).
            await sim_control.grant("o-advisor-li", ASSIGN_TEMPLATE, 1)
            subscribed = await http.post(
                "/api/advisor/subscribe",
                headers=mine,
                json={
                    "advisorId": advisor["id"],
                    "openid": "o-advisor-li",
                    "templateId": ASSIGN_TEMPLATE,
                    "subscribed": True,
                },
            )
            assert subscribed.status_code == 200, subscribed.text

            created = ok(
                await http.post(
                    "/api/customers/miniprogram/create",
                    headers={**mine, "Idempotency-Key": "miniprogram_1796000000000_abcdefghi"},
                    json={
                        "name": "陈女士",
                        "phone": "13700000003",
                        "leadSource": "美团",
                        "contractStatus": "匹配中",
                        "leadLevel": "A类",
                        "serviceCategory": "月嫂",
                        "expectedDeliveryDate": "2027-03-01",
                        "salaryBudget": 12000,
                    },
                ),
                201,
            )
            assert created["action"] == "CREATED"
            customer_id = created["id"]

            listed = ok(await http.get("/api/customers/miniprogram/list", headers=mine))
            assert [c["_id"] for c in listed["customers"]] == [customer_id]
            assert (listed["page"], listed["limit"], listed["hasMore"]) == (1, 10, False)

            detail = ok(await http.get(f"/api/customers/miniprogram/{customer_id}", headers=mine))
            assert detail["phone"] == "13700000003" and detail["salaryBudget"] == 12000
            assert detail["expectedDeliveryDate"] == "2027-03-01"
            assert detail["assignedToName"] == advisor["name"]

            follow_up = ok(
                await http.post(
                    f"/api/customers/miniprogram/{customer_id}/follow-ups",
                    headers=mine,
                    json={
                        "type": "phone",
                        "content": "电话沟通，预产期三月，想先面试两位月嫂",
                        "nextFollowUpDate": "2027-01-05",
                    },
                ),
                201,
            )
            assert follow_up["type"] == "phone" and follow_up["nextFollowUpDate"]

            status = ok(
                await http.get(f"/api/customers/{customer_id}/follow-up-status", headers=mine)
            )
            assert status["followUpStatus"] == "已跟进"
            assert status["currentOwnerHasFollowUp"] is True

            released = ok(
                await http.post(
                    f"/api/customers/miniprogram/{customer_id}/release-to-pool",
                    headers=mine,
                    json={"reason": "客户暂时不需要了"},
                ),
                201,
            )
            assert released["inPublicPool"] is True
            listed = ok(await http.get("/api/customers/miniprogram/list", headers=mine))
            assert listed["customers"] == [] and listed["total"] == 0

            # The manager, from the same mini program, gives the customer back.
            manager = await mini_program_login(http, sim_control, "o-manager-wang", MANAGER_PHONE)
            assert manager["user"]["role"] == "manager"
            theirs = {"Authorization": f"Bearer {manager['access_token']}"}
            assigned = ok(
                await http.patch(
                    f"/api/customers/miniprogram/{customer_id}/assign",
                    headers=theirs,
                    json={"assignedTo": advisor["id"], "assignmentReason": "客户又有需求了"},
                )
            )
            assert assigned["assignedTo"] == advisor["id"]

            logs = ok(
                await http.get(
                    f"/api/customers/miniprogram/{customer_id}/assignment-logs", headers=mine
                )
            )
            assert [log["action"] for log in logs] == ["assign", "release"]

            # The message the advisor gets opens the customer's page, and that page loads.
            message = await wait_for_message(sim_control, "o-advisor-li")
            assert message["template_id"] == ASSIGN_TEMPLATE
            page = urlsplit(message["page"])
            assert page.path == CUSTOMER_PAGE
            [opened_id] = parse_qs(page.query)["id"]
            opened = ok(await http.get(f"/api/customers/miniprogram/{opened_id}", headers=mine))
            assert opened["_id"] == customer_id and opened["name"] == "陈女士"
            assert opened["phone"] == "13700000003"  # the advisor's own again: unmasked


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_create_retried_on_another_process_answers_the_first_result(
    backend: str, tmp_path: Path
) -> None:
    """The mini program retries a create whose answer it lost; behind a load balancer the
    retry reaches another process. The key is in the database, so both agree."""
    async with own_database(backend, tmp_path) as url:
        env = server_env(url, tmp_path)
        await add_staff(env, "xiaoli", "advisor", ADVISOR_PHONE)
        async with (
            served(env, tmp_path) as first,
            served(env, tmp_path) as second,
            httpx.AsyncClient(timeout=30) as http,
        ):
            login = await http.post(
                f"{first.url}/api/auth/login",
                json={"username": "xiaoli", "password": STAFF_PASSWORD},
            )
            token = login.json()["data"]["access_token"]
            headers = {
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": "miniprogram_1796000000000_k3y0nce00",
            }
            body = {
                "name": "周先生",
                "wechatId": "zhou-wx-2026",  # reached on WeChat only: no phone
                "leadSource": "转介绍",
                "contractStatus": "待定",
                "leadLevel": "B类",
            }
            path = "/api/customers/miniprogram/create"
            answers = [
                await http.post(f"{server.url}{path}", headers=headers, json=body)
                for server in (first, second, second)
            ]
            assert [a.status_code for a in answers] == [201, 201, 201]
            created = ok(answers[0], 201)
            assert created["customer"]["wechatId"] == "zhou-wx-2026"
            assert created["customer"]["phone"] is None
            for retry in answers[1:]:
                assert retry.json()["data"] == created
            # A new key is a new request: the WeChat id is now taken.
            again = await http.post(
                f"{second.url}{path}",
                headers={**headers, "Idempotency-Key": "miniprogram_1796000000001_other0000"},
                json=body,
            )
            assert again.status_code == 201
            assert again.json()["success"] is False
            assert again.json()["error"] == "DUPLICATE_WECHAT"
            listed = await http.get(f"{first.url}/api/customers/miniprogram/list", headers=headers)
            assert ok(listed)["total"] == 1
