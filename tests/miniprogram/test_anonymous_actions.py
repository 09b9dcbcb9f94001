"""Customer actions without a session token (MINIPROGRAM_ANONYMOUS_ACTIONS, a migration aid):
refused while it is off; on, the action is recorded, the lead made and the advisor told, but
the unverified caller learns nothing of any customer. A token still counts as ever, and the
rate limits count anonymous calls per openid and per address."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE, Configure, assert_error
from tests.factories import make_customer, make_user, mp_headers, new_openid, new_phone
from tests.miniprogram.conftest import action_body
from wxcrm.core.settings import Settings
from wxcrm.customers.models import Customer, CustomerAction
from wxcrm.miniprogram.models import MiniProgramUser
from wxcrm.notifications.models import Notification
from wxcrm.users.models import User

RECORDED = "记录客户行为成功"


@pytest.fixture
def anonymous_app(app: FastAPI, settings: Settings) -> FastAPI:
    """The app with anonymous actions on (the `app` fixture restores its settings)."""
    app.state.settings = settings.model_copy(update={"miniprogram_anonymous_actions": True})
    return app


@pytest.fixture
def limits(anonymous_app: FastAPI, configure_limits: Configure) -> Configure:
    """Rate limits of this test's own, on the app with anonymous actions on."""
    return configure_limits


def new_customer_openid() -> str:
    return f"o-anon-{uuid.uuid4().hex[:12]}"


async def post(
    client: httpx.AsyncClient, body: dict[str, object], **headers: str
) -> httpx.Response:
    return await client.post("/api/customer/action", json=body, headers=headers)


async def actions_of(session: AsyncSession, openid: str) -> list[CustomerAction]:
    rows = await session.scalars(select(CustomerAction).where(CustomerAction.openid == openid))
    return list(rows)


def assert_reveals_nothing(response: httpx.Response, openid: str, advisor: User) -> str:
    """The anonymous answer: its own action and what it sent, nothing of a customer; returns
    the action's id."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["message"] == RECORDED
    data = body["data"]
    action_id: str = data["actionId"]
    assert data == {
        "actionId": action_id,
        "customerCreated": None,
        "customerId": None,
        "action": {
            "_id": action_id,
            "customerId": openid,
            "advisorId": advisor.id,
            "actionType": "view_resume",
            "customerRecordId": None,
            "notified": data["action"]["notified"],
        },
        "customer": None,
    }
    return action_id


async def test_off_an_action_without_a_token_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    assert settings.miniprogram_anonymous_actions is False
    advisor = await make_user(session)
    openid = new_customer_openid()
    response = await post(client, action_body(openid, advisor.id, customerPhone=new_phone()))
    assert_error(response, 401, "UNAUTHORIZED")
    assert await actions_of(session, openid) == []
    assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_on_the_lead_is_made_and_the_advisor_told_but_nothing_is_revealed(
    anonymous_app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await make_user(session, openid=new_openid(), credits=1)
    openid, phone = new_customer_openid(), new_phone()

    response = await post(
        client, action_body(openid, advisor.id, customerName="张三", customerPhone=phone)
    )

    action_id = assert_reveals_nothing(response, openid, advisor)
    assert response.json()["data"]["action"]["notified"] is True
    assert phone not in response.text and "张三" not in response.text
    [action] = await actions_of(session, openid)
    assert action.id == action_id
    lead = (await session.scalars(select(Customer).where(Customer.phone == phone))).one()
    assert action.customer_record_id == lead.id
    assert (lead.name, lead.owner_id, lead.openid) == ("张三", advisor.id, openid)
    assert lead.phone_verified is False
    [message] = await session.scalars(
        select(Notification).where(Notification.advisor_id == advisor.id)
    )
    assert (message.event, message.status, message.template_id) == (
        "customer_action",
        "pending",
        ACTION_TEMPLATE,
    )
    # The advisor owns the new lead: its message names the customer.
    assert message.payload["values"]["customer_name"] == "张三"
    assert message.payload["values"]["phone"] == phone
    assert message.payload["page"] == f"pages/customer/detail?id={lead.id}"


async def test_the_answer_is_the_same_for_a_known_phone_a_new_one_and_none(
    anonymous_app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await make_user(session)
    known = await make_customer(session, advisor, name="李四")
    await session.commit()
    answers = []
    for phone in (known.phone, new_phone(), None):
        openid = new_customer_openid()
        response = await post(client, action_body(openid, advisor.id, customerPhone=phone))
        assert_reveals_nothing(response, openid, advisor)
        assert "李四" not in response.text and known.id not in response.text
        answers.append({k: v for k, v in response.json()["data"].items() if k != "action"})
    assert answers[0] == {**answers[1], "actionId": answers[0]["actionId"]}
    assert answers[0] == {**answers[2], "actionId": answers[0]["actionId"]}


async def test_an_anonymous_caller_borrows_no_verified_phone(
    anonymous_app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # WeChat verified this number to whoever holds that openid's token, not to this caller.
    openid = new_customer_openid()
    session.add(MiniProgramUser(openid=openid, verified_phone="13700137000"))
    advisor = await make_user(session)
    await session.commit()
    response = await post(client, action_body(openid, advisor.id, customerPhone=None))
    assert_reveals_nothing(response, openid, advisor)
    [action] = await actions_of(session, openid)
    assert action.customer_record_id is None
    assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_on_a_token_still_works_and_still_must_match(
    anonymous_app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await make_user(session)
    openid, phone = new_customer_openid(), new_phone()
    body = action_body(openid, advisor.id, customerPhone=phone)

    response = await post(client, body, **mp_headers(openid))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["customerCreated"] is True
    assert data["customer"]["phone"] == phone and data["customerId"]

    mismatched = await post(client, body, **mp_headers(new_customer_openid()))
    assert_error(mismatched, 403, "FORBIDDEN")
    for header in ("Bearer not-a-token", "Basic dXNlcjpwYXNz", ""):
        assert_error(await post(client, body, Authorization=header), 401, "UNAUTHORIZED")
    assert len(await actions_of(session, openid)) == 1


async def test_anonymous_calls_count_against_their_openid(
    limits: Any, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    limits(rate_limit_action_per_openid="3/minute")
    advisor = await make_user(session)
    await session.commit()
    openid = new_customer_openid()
    body = action_body(openid, advisor.id, customerPhone=None)
    for _ in range(2):
        assert (await post(client, body)).status_code == 200
    # With a token or without, it is one openid's count.
    assert (await post(client, body, **mp_headers(openid))).status_code == 200
    assert_error(await post(client, body), 429, "RATE_LIMITED")
    assert len(await actions_of(session, openid)) == 3
    other = new_customer_openid()
    assert (await post(client, action_body(other, advisor.id))).status_code == 200


async def test_anonymous_calls_count_against_their_address(
    limits: Any, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    limits(rate_limit_action_per_ip="3/minute")
    advisor = await make_user(session)
    await session.commit()
    # A new customerId for each call does not get round the address's limit.
    openids = [new_customer_openid() for _ in range(4)]
    for openid in openids[:3]:
        response = await post(client, action_body(openid, advisor.id, customerPhone=None))
        assert response.status_code == 200, response.text
    refused = await post(client, action_body(openids[3], advisor.id, customerPhone=None))
    assert_error(refused, 429, "RATE_LIMITED")
    assert await actions_of(session, openids[3]) == []
