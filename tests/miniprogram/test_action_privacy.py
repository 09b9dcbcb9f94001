"""Who learns what from a customer action: a phone number typed by anyone links the action
to its customer, but the customer's record goes back only to that customer's own WeChat user,
and its name and phone only to the advisor who owns it. And a lead whose name prints nothing
is announced all the same."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from tests.conftest import ACTION_TEMPLATE
from tests.factories import committed_advisor
from tests.miniprogram.test_actions import act, deliver, notifications
from wxcrm.core.db import Database
from wxcrm.core.settings import Settings
from wxcrm.customers.models import Customer, CustomerAction
from wxcrm.miniprogram.models import MiniProgramUser
from wxcrm.users.models import User
from wxcrm.wechat.sim import SimControl

CUSTOMER_OPENID = "o-the-customer"
STRANGER_OPENID = "o-a-stranger"
NAME, PHONE = "张三", "13800138000"  # action_body's defaults


async def advisor_with_credit(database: Database, sim_control: SimControl) -> User:
    advisor = await committed_advisor(database, credits=1)
    assert advisor.openid
    await sim_control.grant(advisor.openid, ACTION_TEMPLATE, 1)
    return advisor


async def staff_customer(database: Database, owner: User, phone: str = PHONE) -> str:
    """A customer staff entered for `owner`: no WeChat user made it."""
    async with database.writer() as session:
        customer = Customer(customer_no="CUS00000000001", name=NAME, phone=phone, owner_id=owner.id)
        session.add(customer)
        await session.commit()
        return customer.id


async def recorded_against(database: Database, openid: str) -> set[str | None]:
    async with database.reader() as session:
        rows = await session.scalars(
            select(CustomerAction.customer_record_id).where(CustomerAction.openid == openid)
        )
        return set(rows)


def shown_values(message: dict[str, Any]) -> list[str]:
    return [field["value"] for field in message["data"].values()]


async def the_message_to(sim_control: SimControl, advisor: User) -> dict[str, Any]:
    [message] = await sim_control.messages(advisor.openid)
    return message


def assert_neutral(message: dict[str, Any]) -> None:
    """Says a customer acted, and nothing of who: no name, no phone, no customer page."""
    assert message["data"]["thing1"]["value"] == "客户查看了您的简历"
    assert message["data"]["thing3"]["value"] == "已隐藏"
    assert message["data"]["thing7"]["value"] == "微信客户"
    assert not any(NAME in value or PHONE[-4:] in value for value in shown_values(message))
    assert message["page"] == "pages/customer/detail"


# -- the response ---------------------------------------------------------------------------------


async def test_a_stranger_typing_another_advisors_customers_phone_learns_nothing(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    sim_control: SimControl,
) -> None:
    owner = await committed_advisor(database)
    named = await advisor_with_credit(database, sim_control)
    customer_id = (await act(live_client, CUSTOMER_OPENID, owner))["customerId"]
    assert customer_id

    data = await act(live_client, STRANGER_OPENID, named, customerName="随便")

    assert data["customerCreated"] is False
    assert data["customerId"] is None and data["customer"] is None
    assert data["action"]["customerRecordId"] is None  # not even that the record exists
    # The action is still the customer's, for the staff who own it.
    assert await recorded_against(database, STRANGER_OPENID) == {customer_id}
    # The named advisor hears that a customer acted, not who.
    await deliver(committed_app, database, settings)
    assert_neutral(await the_message_to(sim_control, named))
    [row] = [r for r in await notifications(database) if r.advisor_id == named.id]
    assert row.status == "sent"
    stored = json.dumps(row.payload, ensure_ascii=False)
    assert NAME not in stored and PHONE not in stored


async def test_the_wechat_user_who_made_the_customer_still_gets_its_record(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    sim_control: SimControl,
) -> None:
    owner = await committed_advisor(database)
    other = await advisor_with_credit(database, sim_control)
    customer_id = (await act(live_client, CUSTOMER_OPENID, owner))["customerId"]

    data = await act(live_client, CUSTOMER_OPENID, other, actionType="view_resume")

    assert data["customerCreated"] is False
    assert data["customerId"] == customer_id
    customer = data["customer"]
    assert customer["_id"] == customer_id  # type: ignore[index]
    assert (customer["name"], customer["phone"]) == (NAME, PHONE)  # type: ignore[index]
    # What the advisor's message says depends on the advisor: this one does not own it.
    await deliver(committed_app, database, settings)
    assert_neutral(await the_message_to(sim_control, other))


async def test_the_wechat_user_whose_verified_phone_it_is_gets_the_record(
    live_client: httpx.AsyncClient, database: Database
) -> None:
    owner = await committed_advisor(database)
    customer_id = await staff_customer(database, owner)
    async with database.writer() as session:
        session.add(MiniProgramUser(openid=CUSTOMER_OPENID, verified_phone=PHONE))
        await session.commit()

    mine = await act(live_client, CUSTOMER_OPENID, owner, customerPhone=None)
    theirs = await act(live_client, STRANGER_OPENID, owner)

    assert mine["customerId"] == customer_id
    assert mine["customer"]["phone"] == PHONE  # type: ignore[index]
    assert theirs["customerId"] is None and theirs["customer"] is None
    assert await recorded_against(database, STRANGER_OPENID) == {customer_id}


# -- the advisor's message ------------------------------------------------------------------------


async def test_the_customers_own_advisor_gets_its_name_and_phone_whoever_acts(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    sim_control: SimControl,
) -> None:
    owner = await advisor_with_credit(database, sim_control)
    customer_id = await staff_customer(database, owner)

    data = await act(live_client, STRANGER_OPENID, owner)

    assert data["customer"] is None  # the stranger still learns nothing
    await deliver(committed_app, database, settings)
    message = await the_message_to(sim_control, owner)
    assert message["data"]["thing1"]["value"] == "客户查看了您的简历"
    assert message["data"]["thing3"]["value"] == PHONE
    assert message["data"]["thing7"]["value"] == NAME
    assert message["page"] == f"pages/customer/detail?id={customer_id}"


async def test_a_customer_in_the_pool_is_nobodys_own(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    sim_control: SimControl,
) -> None:
    named = await advisor_with_credit(database, sim_control)
    async with database.writer() as session:
        session.add(Customer(customer_no="CUS00000000002", name=NAME, phone=PHONE))
        await session.commit()

    await act(live_client, STRANGER_OPENID, named)

    await deliver(committed_app, database, settings)
    assert_neutral(await the_message_to(sim_control, named))


# -- names and phones that fit to nothing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("typed_name", "shown_name"),
    [
        ("😀😀", "-"),  # kept as typed (the console shows it); the message cannot
        ("\u200b\u200b", "微信客户8000"),  # prints nothing: no name, so the default one
    ],
    ids=["emoji", "zero-width"],
)
async def test_a_lead_whose_name_fits_to_nothing_is_announced(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    sim_control: SimControl,
    typed_name: str,
    shown_name: str,
) -> None:
    advisor = await advisor_with_credit(database, sim_control)

    data = await act(live_client, CUSTOMER_OPENID, advisor, customerName=typed_name)

    assert data["customerCreated"] is True
    await deliver(committed_app, database, settings)
    [row] = await notifications(database)
    assert (row.status, row.last_errmsg) == ("sent", None)
    message = await the_message_to(sim_control, advisor)
    assert message["data"]["thing1"]["value"] == "新客户查看了您的简历"
    assert message["data"]["thing3"]["value"] == PHONE
    assert message["data"]["thing7"]["value"] == shown_name


async def test_a_template_with_phone_number_and_name_keywords_announces_every_action(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    sim_control: SimControl,
) -> None:
    """Without a phone, or with one the advisor may not see, its keyword shows "-"."""
    fields = {
        "title": "thing1",
        "time": "time2",
        "phone": "phone_number3",
        "customer_name": "name4",
    }
    typed_keys = settings.model_copy(update={"wechat_template_customer_action_fields": fields})
    owner = await committed_advisor(database)
    named = await committed_advisor(database, credits=2)
    assert named.openid
    await sim_control.grant(named.openid, ACTION_TEMPLATE, 2)
    await staff_customer(database, owner)

    await act(live_client, "o-no-phone", named, customerPhone=None)
    await act(live_client, STRANGER_OPENID, named)

    await deliver(committed_app, database, typed_keys)
    rows = [r for r in await notifications(database) if r.advisor_id == named.id]
    assert [r.status for r in rows] == ["sent", "sent"]
    messages = await sim_control.messages(named.openid)
    assert [m["data"]["phone_number3"]["value"] for m in messages] == ["-", "-"]
    assert [m["data"]["name4"]["value"] for m in messages] == ["微信客户", "微信客户"]
