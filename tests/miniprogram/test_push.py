"""WeChat's message push: the URL check, signatures, and subscription events applied once."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.factories import add_user, make_user, new_openid
from tests.miniprogram.conftest import PUSH_TOKEN
from wxcrm.miniprogram.models import WeChatPushEvent
from wxcrm.notifications.models import AdvisorSubscription
from wxcrm.notifications.subscriptions import get_subscription, record_decision
from wxcrm.users.models import Role, User

URL = "/api/wechat/push"
TEMPLATE = "tmpl-customer-action"
OTHER_TEMPLATE = "tmpl-customer-assigned"
CREATED = 1_700_000_000


@pytest.fixture
async def advisor(push_app: FastAPI, session: AsyncSession) -> User:
    return await add_user(session, openid=new_openid())


def signed(
    *, token: str = PUSH_TOKEN, timestamp: int | None = None, nonce: str | None = None, **extra: str
) -> dict[str, str]:
    """The query WeChat adds to a push: signature, timestamp and nonce (a new one each time,
    as WeChat's: a nonce is accepted once)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = str(secrets.randbelow(10**10)) if nonce is None else nonce
    joined = "".join(sorted([token, stamp, nonce]))
    return {
        "signature": hashlib.sha1(joined.encode()).hexdigest(),
        "timestamp": stamp,
        "nonce": nonce,
        **extra,
    }


def popup_json(
    openid: str,
    decisions: list[tuple[str, str]],
    *,
    created: int = CREATED,
    event: str = "subscribe_msg_popup_event",
) -> str:
    items = [
        {"TemplateId": template, "SubscribeStatusString": status, "PopupScene": "0"}
        for template, status in decisions
    ]
    return json.dumps(
        {
            "ToUserName": "gh_123456789abc",
            "FromUserName": openid,
            "CreateTime": str(created),
            "MsgType": "event",
            "Event": event,
            "List": items[0] if len(items) == 1 else items,
        }
    )


def popup_xml(
    openid: str,
    decisions: list[tuple[str, str]],
    *,
    created: int = CREATED,
    event: str = "subscribe_msg_popup_event",
    wrapper: str = "SubscribeMsgPopupEvent",
) -> str:
    items = "".join(
        f"<List><TemplateId><![CDATA[{template}]]></TemplateId>"
        f"<SubscribeStatusString><![CDATA[{status}]]></SubscribeStatusString>"
        "<PopupScene>2</PopupScene></List>"
        for template, status in decisions
    )
    return (
        "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{created}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>"
        f"<{wrapper}>{items}</{wrapper}></xml>"
    )


async def push(
    client: httpx.AsyncClient, body: str, query: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(URL, params=signed() if query is None else query, content=body)


def acknowledged(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.text == "success"
    assert response.headers["content-type"].startswith("text/plain")


async def subscription(
    session: AsyncSession, advisor_id: str, template: str = TEMPLATE
) -> AdvisorSubscription | None:
    row = await get_subscription(session, advisor_id, template)
    if row is not None:
        await session.refresh(row)
    return row


async def count(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# -- the URL check ---------------------------------------------------------------------------


async def test_the_url_check_echoes_echostr(push_app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.get(URL, params=signed(echostr="7312951049632517"))
    assert response.status_code == 200, response.text
    assert response.text == "7312951049632517"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]  # once


async def test_the_url_check_refuses_a_bad_signature(
    push_app: FastAPI, client: httpx.AsyncClient
) -> None:
    forged = signed(token="not-our-token", echostr="7312951049632517")
    body = assert_error(await client.get(URL, params=forged), 401, "UNAUTHORIZED")
    assert "7312951049632517" not in json.dumps(body)
    assert_error(await client.get(URL, params={"echostr": "1"}), 401, "UNAUTHORIZED")
    tampered = {**signed(echostr="1"), "nonce": "another-nonce"}
    assert_error(await client.get(URL, params=tampered), 401, "UNAUTHORIZED")
    non_ascii = {**signed(echostr="1"), "signature": "签名"}
    assert_error(await client.get(URL, params=non_ascii), 401, "UNAUTHORIZED")


async def test_not_configured_is_404(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # The app's settings have no WECHAT_PUSH_TOKEN.
    body = assert_error(await client.get(URL, params=signed(echostr="1")), 404, "NOT_FOUND")
    assert "消息推送" in body["message"]
    response = await push(client, popup_json("o-someone", [(TEMPLATE, "accept")]))
    assert_error(response, 404, "NOT_FOUND")
    assert await count(session, WeChatPushEvent) == 0


# -- subscription decisions ------------------------------------------------------------------


async def test_an_accept_in_json_adds_one_credit(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    acknowledged(await push(client, popup_json(advisor.openid, [(TEMPLATE, "accept")])))
    row = await subscription(session, advisor.id)
    assert row is not None
    assert (row.subscribed, row.credits, row.openid) == (True, 1, advisor.openid)
    assert row.subscribe_data == {
        "source": "wechat_push",
        "popupScene": "0",
        "event": "subscribe_msg_popup_event",
    }
    assert row.subscribe_time is not None and int(row.subscribe_time.timestamp()) == CREATED


async def test_an_accept_in_xml_adds_one_credit(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    acknowledged(await push(client, popup_xml(advisor.openid, [(TEMPLATE, "accept")])))
    row = await subscription(session, advisor.id)
    assert row is not None
    assert (row.subscribed, row.credits) == (True, 1)
    assert row.subscribe_data is not None and row.subscribe_data["popupScene"] == "2"


async def test_wechats_documented_json_shape_is_understood(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    # WeChat's JSON example puts the array under the event's name instead of `List`.
    body = json.dumps(
        {
            "FromUserName": advisor.openid,
            "CreateTime": CREATED,
            "MsgType": "event",
            "Event": "subscribe_msg_popup_event",
            "SubscribeMsgPopupEvent": [
                {"TemplateId": TEMPLATE, "SubscribeStatusString": "accept", "PopupScene": 0}
            ],
        }
    )
    acknowledged(await push(client, body))
    row = await subscription(session, advisor.id)
    assert row is not None and row.credits == 1


async def test_a_reject_unsubscribes_and_keeps_earlier_credits(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    for _ in range(2):
        await record_decision(
            session,
            advisor_id=advisor.id,
            template_id=TEMPLATE,
            openid=advisor.openid,
            accepted=True,
            add_credit=True,
        )
    await session.commit()
    acknowledged(await push(client, popup_json(advisor.openid, [(TEMPLATE, "reject")])))
    row = await subscription(session, advisor.id)
    assert row is not None and (row.subscribed, row.credits) == (False, 2)


async def test_turning_it_off_in_settings_unsubscribes(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    acknowledged(await push(client, popup_xml(advisor.openid, [(TEMPLATE, "accept")])))
    change = popup_xml(
        advisor.openid,
        [(TEMPLATE, "reject")],
        created=CREATED + 60,
        event="subscribe_msg_change_event",
        wrapper="SubscribeMsgChangeEvent",
    )
    acknowledged(await push(client, change))
    row = await subscription(session, advisor.id)
    assert row is not None and (row.subscribed, row.credits) == (False, 1)
    assert row.subscribe_data is not None
    assert row.subscribe_data["event"] == "subscribe_msg_change_event"


async def test_a_push_delivered_twice_adds_one_credit(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    body = popup_xml(advisor.openid, [(TEMPLATE, "accept")])
    acknowledged(await push(client, body))
    acknowledged(await push(client, body))  # WeChat's retry, signed anew
    row = await subscription(session, advisor.id)
    assert row is not None and row.credits == 1
    assert await count(session, WeChatPushEvent) == 1
    # A later accept of the same template is another decision.
    later = popup_json(advisor.openid, [(TEMPLATE, "accept")], created=CREATED + 1)
    acknowledged(await push(client, later))
    row = await subscription(session, advisor.id)
    assert row is not None and row.credits == 2


async def test_several_templates_in_one_push(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    decisions = [(TEMPLATE, "accept"), (OTHER_TEMPLATE, "reject")]
    acknowledged(await push(client, popup_xml(advisor.openid, decisions)))
    acknowledged(await push(client, popup_json(advisor.openid, decisions, created=CREATED + 5)))
    accepted = await subscription(session, advisor.id, TEMPLATE)
    rejected = await subscription(session, advisor.id, OTHER_TEMPLATE)
    assert accepted is not None and (accepted.subscribed, accepted.credits) == (True, 2)
    assert rejected is not None and (rejected.subscribed, rejected.credits) == (False, 0)
    assert await count(session, WeChatPushEvent) == 4


async def test_an_openid_of_no_advisor_is_acknowledged_and_ignored(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    manager = await make_user(session, Role.manager)
    manager.openid = "o-manager"
    await session.commit()
    for openid in ("o-a-customer", "o-manager"):
        acknowledged(await push(client, popup_json(openid, [(TEMPLATE, "accept")])))
        acknowledged(await push(client, popup_xml(openid, [(TEMPLATE, "accept")])))
    assert await count(session, WeChatPushEvent) == 0
    assert await count(session, AdvisorSubscription) == 0


async def test_other_messages_are_acknowledged_and_ignored(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    text = (
        f"<xml><FromUserName><![CDATA[{advisor.openid}]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[你好]]></Content><MsgId>1</MsgId></xml>"
    )
    sent = json.dumps(
        {
            "FromUserName": advisor.openid,
            "CreateTime": "1700000000",
            "MsgType": "event",
            "Event": "subscribe_msg_sent_event",
            "SubscribeMsgSentEvent": {"List": {"TemplateId": TEMPLATE, "ErrorCode": "0"}},
        }
    )
    for body in (text, sent):
        acknowledged(await push(client, body))
    assert await count(session, WeChatPushEvent) == 0
    assert await count(session, AdvisorSubscription) == 0


# -- refusals --------------------------------------------------------------------------------


async def test_forged_and_stale_pushes_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    body = popup_json(advisor.openid, [(TEMPLATE, "accept")])
    now = int(time.time())
    refused = [
        signed(token="a-guessed-token"),
        {k: v for k, v in signed().items() if k != "signature"},
        {},
        signed(timestamp=now - 11 * 60),
        signed(timestamp=now + 11 * 60),
        signed(timestamp=-5),
    ]
    for query in refused:
        assert_error(await push(client, body, query), 401, "UNAUTHORIZED")
    assert await count(session, WeChatPushEvent) == 0
    assert await count(session, AdvisorSubscription) == 0
    # Inside the window is fine: clocks differ a little.
    acknowledged(await push(client, body, signed(timestamp=now - 9 * 60)))


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<xml><FromUserName>unclosed</xml>",
        '{"FromUserName": "o-x", "Event": ',
        "{}}",
        # Entity expansion: refused before anything is expanded.
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><Event>&b;</Event></xml>',
        "[" * 50_000 + "]" * 50_000,
        "{" + '"a":[' * 50_000 + "]" * 50_000 + "}",
    ],
    ids=["empty", "bad-xml", "bad-json", "trailing-json", "entities", "deep-array", "deep-json"],
)
async def test_malformed_bodies_are_400(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User, body: str
) -> None:
    assert_error(await push(client, body), 400, "BAD_REQUEST")
    assert await count(session, WeChatPushEvent) == 0


async def test_malformed_subscription_events_are_400_with_nothing_written(
    client: httpx.AsyncClient, session: AsyncSession, advisor: User
) -> None:
    assert advisor.openid
    good = json.loads(popup_json(advisor.openid, [(TEMPLATE, "accept")]))
    broken = [
        {**good, "List": []},
        {**good, "List": "accept"},
        {k: v for k, v in good.items() if k != "List"},
        {k: v for k, v in good.items() if k != "FromUserName"},
        {**good, "CreateTime": "yesterday"},
        {**good, "List": [good["List"], {"SubscribeStatusString": "accept"}]},
        {**good, "List": [good["List"], {"TemplateId": OTHER_TEMPLATE}]},
        {**good, "List": {**good["List"], "TemplateId": "t" * 200}},
    ]
    for document in broken:
        assert_error(await push(client, json.dumps(document)), 400, "BAD_REQUEST")
    # A later template's fault leaves the earlier one unapplied too.
    xml = popup_xml(advisor.openid, [(TEMPLATE, "accept"), ("", "accept")])
    assert_error(await push(client, xml), 400, "BAD_REQUEST")
    assert await count(session, WeChatPushEvent) == 0
    assert await count(session, AdvisorSubscription) == 0
