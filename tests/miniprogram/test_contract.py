"""Seed 000's request examples, sent as they stand, get its response shapes and messages."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE, assert_error
from tests.factories import make_user, mp_headers, token_for
from tests.miniprogram.conftest import action_body
from wxcrm.core.ids import is_object_id
from wxcrm.users.models import Role
from wxcrm.wechat.sim import SimControl

ENVELOPE = {"success", "data", "message", "timestamp"}


def ok(response: httpx.Response, message: str) -> dict[str, object]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == ENVELOPE
    assert body["success"] is True and body["message"] == message
    assert isinstance(body["timestamp"], int)
    data: dict[str, object] = body["data"]
    return data


async def test_openid_from_a_login_code(client: httpx.AsyncClient, sim_control: SimControl) -> None:
    code = await sim_control.mint_login_code("wx_openid_123456789")
    data = ok(await client.post("/api/wechat/openid", json={"code": code}), "获取openid成功")
    assert data["openid"] == "wx_openid_123456789"
    assert isinstance(data["token"], str)
    assert "session_key" not in str(data) and "sessionKey" not in str(data)
    # The session token works for the customer endpoints, as that openid.
    used = await client.post("/api/wechat/openid", json={"code": code})
    body = assert_error(used, 400, "BAD_REQUEST")
    assert body["error"]["details"] == {"errcode": 40163}


async def test_advisor_subscribe_as_in_the_seed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await make_user(session, Role.advisor)
    advisor.openid = "wx_openid_123456"
    await session.flush()
    request = {
        "advisorId": advisor.id,
        "openid": "wx_openid_123456",
        "templateId": "template_123",
        "subscribed": True,
        "subscribeData": {
            "source": "miniprogram",
            "timestamp": "2024-01-01T12:00:00.000Z",
            "userAgent": {},
            "subscriptionStatus": "accept",
        },
    }
    response = await client.post(
        "/api/advisor/subscribe", json=request, headers=await token_for(client, advisor)
    )
    data = ok(response, "保存订阅状态成功")
    assert {"_id", "advisorId", "openid", "templateId", "subscribed", "subscribeTime"} <= set(data)
    assert is_object_id(data["_id"])
    assert data["advisorId"] == advisor.id and data["openid"] == "wx_openid_123456"
    assert data["templateId"] == "template_123" and data["subscribed"] is True
    assert data["credits"] == 1


async def test_customer_action_as_in_the_seed_creates_then_links(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await make_user(session, Role.advisor)
    openid = "wx_openid_123456"
    response = await client.post(
        "/api/customer/action", json=action_body(openid, advisor.id), headers=mp_headers(openid)
    )
    data = ok(response, "记录客户行为成功，已创建新客户线索")
    assert set(data) == {"actionId", "customerCreated", "customerId", "action", "customer"}
    assert data["customerCreated"] is True
    action, customer = data["action"], data["customer"]
    assert isinstance(action, dict) and isinstance(customer, dict)
    assert set(action) == {
        "_id",
        "customerId",
        "advisorId",
        "actionType",
        "customerRecordId",
        "notified",
    }
    assert action["_id"] == data["actionId"]
    assert action["customerId"] == openid and action["advisorId"] == advisor.id
    assert action["actionType"] == "view_resume"
    assert action["customerRecordId"] == data["customerId"] == customer["_id"]
    assert set(customer) == {"_id", "name", "phone", "leadSource", "customerId"}
    assert customer["name"] == "张三" and customer["phone"] == "13800138000"
    assert customer["leadSource"] == "其他"
    assert re.fullmatch(r"CUS\d{11}", str(customer["customerId"]))

    again = await client.post(
        "/api/customer/action",
        json=action_body(openid, advisor.id, actionType="contact_advisor"),
        headers=mp_headers(openid),
    )
    linked = ok(again, "记录客户行为成功")
    assert linked["customerCreated"] is False
    assert linked["customerId"] == data["customerId"]


async def test_message_send_as_in_the_seed(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl, wechat_token: str
) -> None:
    manager = await make_user(session, Role.manager)
    await sim_control.grant("wx_openid_advisor", ACTION_TEMPLATE, 1)
    request = {
        "touser": "wx_openid_advisor",
        "template_id": ACTION_TEMPLATE,
        "data": {
            "thing1": {"value": "客户张三查看了您的简历"},
            "time2": {"value": "2024-01-01 12:00:00"},
            "thing3": {"value": "13800138000"},
            "thing7": {"value": "张三"},
        },
        "page": "pages/customer/detail?id=customer_123",
        "miniprogram_state": "formal",
    }
    response = await client.post(
        "/api/message/send", json=request, headers=await token_for(client, manager)
    )
    data = ok(response, "发送订阅消息成功")
    assert data["errcode"] == 0 and data["errmsg"] == "ok" and isinstance(data["msgid"], int)
    [message] = await sim_control.messages()
    assert message["data"]["thing1"] == {"value": "客户张三查看了您的简历"}
    assert message["page"] == "pages/customer/detail?id=customer_123"
    assert message["miniprogram_state"] == "formal"
