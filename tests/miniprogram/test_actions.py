"""Customer actions end to end: leads, the advisor's message at the simulator, folding,
credits, verified phones, and fifty concurrent requests with one new phone."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE, assert_error
from tests.factories import (
    DEFAULT_PASSWORD,
    committed_advisor,
    make_user,
    mp_headers,
    token_for,
)
from tests.miniprogram.conftest import action_body
from wxcrm.core.db import Database
from wxcrm.core.settings import Settings
from wxcrm.customers.models import Customer, CustomerAction
from wxcrm.notifications.models import Notification
from wxcrm.notifications.subscriptions import NO_CREDIT, NO_OPENID, available_credits
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.users.models import Role, User
from wxcrm.wechat.sim import SimControl


async def act(
    client: httpx.AsyncClient, openid: str, advisor: User, **overrides: object
) -> dict[str, object]:
    response = await client.post(
        "/api/customer/action",
        json=action_body(openid, advisor.id, **overrides),
        headers=mp_headers(openid),
    )
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def deliver(app: FastAPI, database: Database, settings: Settings) -> None:
    await DeliveryWorker(database, app.state.wechat, settings).run_until_idle()


async def notifications(database: Database) -> list[Notification]:
    async with database.reader() as session:
        return list((await session.scalars(select(Notification))).all())


# -- leads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["13800138000", "138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "8613800138000"]
)
async def test_phones_are_normalised(
    client: httpx.AsyncClient, session: AsyncSession, typed: str
) -> None:
    advisor = await make_user(session, Role.advisor)
    data = await act(client, "o-c1", advisor, customerPhone=typed)
    assert data["customerCreated"] is True
    assert data["customer"]["phone"] == "13800138000"  # type: ignore[index]


async def test_the_default_name_and_the_lead_fields(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await make_user(session, Role.advisor)
    data = await act(client, "o-c2", advisor, customerName=None, actionType="book_service")
    customer = await session.get(Customer, data["customerId"])
    assert customer is not None
    assert customer.name == "微信客户8000"
    assert customer.openid == "o-c2" and customer.wechat_id is None
    assert customer.lead_source == "其他" and customer.contract_status == "待定"
    assert customer.created_by_id == advisor.id and customer.owner_id == advisor.id
    assert customer.remark and "book_service" in customer.remark
    assert customer.phone_verified is False


@pytest.mark.parametrize("phone", [None, "", "12345678901", "1380013800"])
async def test_without_a_valid_phone_only_the_action_is_recorded(
    client: httpx.AsyncClient, session: AsyncSession, phone: str | None
) -> None:
    advisor = await make_user(session, Role.advisor)
    data = await act(client, "o-c3", advisor, customerPhone=phone)
    assert data["customerCreated"] is False
    assert data["customerId"] is None and data["customer"] is None
    assert data["action"]["customerRecordId"] is None  # type: ignore[index]
    assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_a_verified_phone_stands_in_for_a_typed_one(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl, wechat_token: str
) -> None:
    advisor = await make_user(session, Role.advisor)
    code = await sim_control.mint_phone_code("13900139000")
    verified = await client.post(
        "/api/wechat/phone", json={"code": code}, headers=mp_headers("o-c4")
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["data"] == {"phoneNumber": "13900139000", "verified": True}
    data = await act(client, "o-c4", advisor, customerPhone=None, customerName="李四")
    customer = await session.get(Customer, data["customerId"])
    assert customer is not None and customer.phone == "13900139000"
    assert customer.phone_verified is True


async def test_an_advisor_binds_its_openid_by_logging_in_with_a_code(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    advisor = await make_user(session, Role.advisor)
    code = await sim_control.mint_login_code("o-advisor-bound")
    response = await client.post(
        "/api/auth/login",
        json={"username": advisor.username, "password": DEFAULT_PASSWORD, "code": code},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["user"]["openidBound"] is True
    await session.refresh(advisor)
    assert advisor.openid == "o-advisor-bound"
    # One openid, one account: the latest login takes it over (tests/users has the log line).
    other = await make_user(session, Role.advisor)
    moved = await client.post(
        "/api/auth/login",
        json={
            "username": other.username,
            "password": DEFAULT_PASSWORD,
            "code": await sim_control.mint_login_code("o-advisor-bound"),
        },
    )
    assert moved.status_code == 200, moved.text
    await session.refresh(advisor)
    await session.refresh(other)
    assert advisor.openid is None and other.openid == "o-advisor-bound"


async def test_an_advisor_saves_only_its_own_subscription(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor, other = await make_user(session), await make_user(session)
    response = await client.post(
        "/api/advisor/subscribe",
        json={"advisorId": other.id, "openid": "o-x", "templateId": "t", "subscribed": True},
        headers=await token_for(client, advisor),
    )
    assert_error(response, 403, "FORBIDDEN")


async def test_with_push_configured_a_client_report_adds_no_credit(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    from pydantic import SecretStr

    app.state.settings = settings.model_copy(update={"wechat_push_token": SecretStr("t0ken")})
    advisor = await make_user(session)
    response = await client.post(
        "/api/advisor/subscribe",
        json={
            "advisorId": advisor.id,
            "openid": "o-y",
            "templateId": ACTION_TEMPLATE,
            "subscribed": True,
            "subscribeData": {"subscriptionStatus": "accept"},
        },
        headers=await token_for(client, advisor),
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["subscribed"] is True
    assert response.json()["data"]["credits"] == 0


# -- the advisor's message ------------------------------------------------------------------------


async def test_an_action_puts_one_message_with_the_seeds_title_at_the_simulator(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    sim_control: SimControl,
) -> None:
    advisor = await committed_advisor(database, credits=2)
    assert advisor.openid
    await sim_control.grant(advisor.openid, ACTION_TEMPLATE, 2)
    data = await act(live_client, "o-new-customer", advisor)
    assert data["action"]["notified"] is True  # type: ignore[index]
    await deliver(committed_app, database, settings)
    [message] = await sim_control.messages()
    assert message["touser"] == advisor.openid
    assert message["data"]["thing1"]["value"] == "新客户查看了您的简历"
    assert message["data"]["thing3"]["value"] == "13800138000"
    assert message["data"]["thing7"]["value"] == "张三"
    assert message["page"] == f"pages/customer/detail?id={data['customerId']}"
    async with database.reader() as session:
        assert await available_credits(session, advisor.id, ACTION_TEMPLATE) == 1

    # The same customer again, later (outside the window): an existing customer's title.
    async with database.writer() as session:
        for row in await session.scalars(select(Notification)):
            row.created_at = row.created_at.replace(year=2000)
        await session.commit()
    await act(live_client, "o-new-customer", advisor, actionType="contact_advisor")
    await deliver(committed_app, database, settings)
    titles = [m["data"]["thing1"]["value"] for m in await sim_control.messages()]
    assert titles == ["新客户查看了您的简历", "客户想要联系您"]


async def test_five_actions_within_the_window_put_one_message(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    sim_control: SimControl,
) -> None:
    advisor = await committed_advisor(database, credits=5)
    assert advisor.openid
    await sim_control.grant(advisor.openid, ACTION_TEMPLATE, 5)
    await act(live_client, "o-clicker", advisor)
    await deliver(committed_app, database, settings)  # the first is out before the others
    for _ in range(4):
        await act(live_client, "o-clicker", advisor, actionType="contact_advisor")
    await deliver(committed_app, database, settings)
    assert len(await sim_control.messages()) == 1
    [row] = await notifications(database)
    assert row.fold_count == 5 and row.status == "sent"
    async with database.reader() as session:
        assert await available_credits(session, advisor.id, ACTION_TEMPLATE) == 4


async def test_without_a_credit_no_message_and_the_outbox_says_why(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    sim_control: SimControl,
) -> None:
    advisor = await committed_advisor(database, credits=0)
    unbound = await committed_advisor(database, credits=3, bound=False)
    first = await act(live_client, "o-c5", advisor)
    second = await act(live_client, "o-c6", unbound, customerPhone="13700137000")
    assert first["action"]["notified"] is False  # type: ignore[index]
    assert second["action"]["notified"] is False  # type: ignore[index]
    await deliver(committed_app, database, settings)
    assert await sim_control.messages() == []
    reasons = {
        row.advisor_id: (row.status, row.skip_reason) for row in await notifications(database)
    }
    assert reasons == {advisor.id: ("skipped", NO_CREDIT), unbound.id: ("skipped", NO_OPENID)}


async def test_a_43101_from_a_staff_send_zeroes_the_advisors_credits(
    live_client: httpx.AsyncClient, database: Database
) -> None:
    # Committed rows: the zeroing is written in a transaction of its own.
    advisor = await committed_advisor(database, credits=3)  # WeChat itself has none
    async with database.writer() as session:
        manager = await make_user(session, Role.manager, username="mp-manager")
        await session.commit()
    response = await live_client.post(
        "/api/message/send",
        json={
            "touser": advisor.openid,
            "template_id": ACTION_TEMPLATE,
            "data": {"thing1": {"value": "x"}},
        },
        headers=await token_for(live_client, manager),
    )
    body = assert_error(response, 502, "WECHAT_ERROR")
    assert body["error"]["details"]["errcode"] == 43101
    async with database.reader() as session:
        assert await available_credits(session, advisor.id, ACTION_TEMPLATE) == 0


# -- concurrency ---------------------------------------------------------------------------------


async def test_fifty_concurrent_actions_with_one_new_phone_make_one_customer(
    live_client: httpx.AsyncClient, database: Database
) -> None:
    advisor = await committed_advisor(database)
    openids = [f"o-rush-{n}" for n in range(50)]
    responses = await asyncio.gather(
        *(
            live_client.post(
                "/api/customer/action",
                json=action_body(openid, advisor.id, customerPhone="13600136000"),
                headers=mp_headers(openid),
            )
            for openid in openids
        )
    )
    assert [r.status_code for r in responses] == [200] * 50, [
        r.text for r in responses if r.status_code != 200
    ]
    bodies = [r.json() for r in responses]
    created = [b for b in bodies if b["data"]["customerCreated"]]
    assert len(created) == 1
    assert created[0]["message"] == "记录客户行为成功，已创建新客户线索"
    customer_id = created[0]["data"]["customerId"]
    # The other 49 are strangers to that customer: their actions are linked to it, but the
    # record is not theirs to see.
    assert {b["data"]["customerId"] for b in bodies if b is not created[0]} == {None}
    assert sum(b["message"] == "记录客户行为成功" for b in bodies) == 49
    async with database.reader() as session:
        count = await session.scalar(
            select(func.count()).select_from(Customer).where(Customer.phone == "13600136000")
        )
        linked = set(await session.scalars(select(CustomerAction.customer_record_id)))
    assert count == 1
    assert linked == {customer_id}
