"""Bad input to the mini-program endpoints: a clear 4xx envelope naming the field, nothing
written, never a 500 (README: the envelope and its statuses).

Every refused request is checked against the row counts of the tables the endpoints write,
taken in the test's own session (the app writes in the same transaction).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE, TEST_SECRET_KEY, assert_error
from tests.factories import add_user, make_user, token_for
from tests.miniprogram.conftest import action_body as seed_action_body
from wxcrm.core.security import create_token
from wxcrm.core.settings import Settings
from wxcrm.customers.models import Customer, CustomerAction
from wxcrm.miniprogram.models import MiniProgramUser
from wxcrm.notifications.models import AdvisorSubscription, Notification
from wxcrm.users.models import Role, User
from wxcrm.users.service import issue_staff_token
from wxcrm.wechat.sim import SimControl

OPENID = "o-bad-input-customer"
OTHER_OPENID = "o-someone-else"
VALID_PHONE = "13800138000"
UNKNOWN_ID = "0123456789abcdef01234567"
ONE_MIB = 1024 * 1024

ACTION_URL = "/api/customer/action"
OPENID_URL = "/api/wechat/openid"
PHONE_URL = "/api/wechat/phone"
SUBSCRIBE_URL = "/api/advisor/subscribe"
SEND_URL = "/api/message/send"

# What the endpoints write: none of it may change when a request is refused.
TABLES = (Customer, CustomerAction, Notification, AdvisorSubscription, MiniProgramUser)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def nested(depth: int, leaf: Any = 1) -> Any:
    """A JSON object `depth` levels deep: {"k": {"k": … leaf}}."""
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def describe(value: Any) -> str:
    """A short test id for a bad value."""
    if value is MISSING:
        return "missing"
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= 24:
        return text
    brackets = text.count("{") + text.count("[")
    return f"{type(value).__name__}-{len(text)}chars-{brackets}brackets"


def case_ids(cases: list[tuple[str, Any]]) -> list[str]:
    return [f"{field}={describe(value)}" for field, value in cases]


def miniprogram_headers(
    openid: str = OPENID,
    *,
    key: str = TEST_SECRET_KEY,
    issued: datetime | None = None,
) -> dict[str, str]:
    token = create_token(key, openid, "miniprogram", timedelta(hours=1), now=issued)
    return {"Authorization": f"Bearer {token}"}


def with_field(body: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    """`body` with `field` set to `value` (removed for MISSING); dotted names go one deeper."""
    changed: dict[str, Any] = json.loads(json.dumps(body))
    *parents, last = field.split(".")
    target = changed
    for parent in parents:
        target = target.setdefault(parent, {})
    if value is MISSING:
        target.pop(last, None)
    else:
        target[last] = value
    return changed


async def row_counts(session: AsyncSession) -> dict[str, int]:
    return {
        model.__tablename__: await session.scalar(select(func.count()).select_from(model)) or 0
        for model in TABLES
    }


def assert_field_error(response: httpx.Response, field: str) -> dict[str, Any]:
    """A 400 validation envelope whose details name `field` (or a part of it)."""
    body = assert_error(response, 400, "VALIDATION_ERROR")
    details = body["error"]["details"]
    assert isinstance(details, list) and details, body
    for detail in details:
        assert set(detail) == {"field", "message"}, detail
        assert isinstance(detail["message"], str) and detail["message"], detail
    fields = [detail["field"] for detail in details]
    assert any(name == field or name.startswith(f"{field}.") for name in fields), fields
    return body


@dataclass(frozen=True)
class Staff:
    id: str
    headers: dict[str, str]


def staff_headers(settings: Settings, user: User) -> dict[str, str]:
    token, _ = issue_staff_token(settings, user)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def advisor_id(session: AsyncSession) -> str:
    return (await add_user(session, Role.advisor)).id


@pytest.fixture
async def advisor(session: AsyncSession, settings: Settings) -> Staff:
    user = await add_user(session, Role.advisor)
    return Staff(user.id, staff_headers(settings, user))


@pytest.fixture
async def manager(session: AsyncSession, settings: Settings) -> Staff:
    user = await add_user(session, Role.manager)
    return Staff(user.id, staff_headers(settings, user))


@pytest.fixture
async def unchanged(session: AsyncSession) -> AsyncIterator[None]:
    """Asserts, after the test, that no table the endpoints write has gained or lost a row.

    Request it after the fixtures that make users, so that their rows are counted before.
    """
    before = await row_counts(session)
    yield
    assert await row_counts(session) == before


# -- POST /api/customer/action ------------------------------------------------------------------


def action_body(advisor_id: str, **fields: Any) -> dict[str, Any]:
    """A valid action with a valid new phone: were it accepted, it would make a lead."""
    data = {"resumeId": "resume-1", "timestamp": "2024-01-01T12:00:00.000Z"}
    body = seed_action_body(OPENID, advisor_id, actionData=data, customerPhone=VALID_PHONE)
    return body | fields


ACTION_FIELD_CASES: list[tuple[str, Any]] = [
    # customerId: the openid; required, text, 1–64 characters
    ("customerId", MISSING),
    ("customerId", None),
    ("customerId", 12345),
    ("customerId", ["o-1"]),
    ("customerId", ""),
    ("customerId", "   "),
    ("customerId", "o" * 65),
    # advisorId: a 24-hex id
    ("advisorId", MISSING),
    ("advisorId", None),
    ("advisorId", 12345),
    ("advisorId", ""),
    ("advisorId", "not-an-object-id"),
    ("advisorId", "ABCDEF0123456789ABCDEF01"),
    ("advisorId", "0" * 25),
    ("advisorId", {"$ne": None}),
    # actionType: one of three
    ("actionType", MISSING),
    ("actionType", None),
    ("actionType", 1),
    ("actionType", ""),
    ("actionType", "delete_everything"),
    ("actionType", "VIEW_RESUME"),
    ("actionType", "view_resume" * 10),
    # actionData: a JSON object, ≤ 8 KiB, ≤ 5 levels
    ("actionData", MISSING),
    ("actionData", None),
    ("actionData", "resume-1"),
    ("actionData", ["resume-1"]),
    ("actionData", 42),
    ("actionData", True),
    ("actionData", {"blob": "x" * (8 * 1024)}),
    ("actionData", {"blob": "张" * 2800}),  # fewer than 8 Ki characters, more than 8 KiB
    ("actionData", {f"k{i}": i for i in range(1500)}),
    ("actionData", nested(6)),
    ("actionData", {"list": [[[[[1]]]]]}),
    ("actionData", nested(400)),
    ("actionData", nested(900)),
    # customerName: ≤ 50 characters
    ("customerName", 123),
    ("customerName", ["张三"]),
    ("customerName", "张" * 51),
    # customerPhone: phone-shaped text, ≤ 32 characters
    ("customerPhone", 13800138000),
    ("customerPhone", "abc"),
    ("customerPhone", "1380013800O"),
    ("customerPhone", "1" * 40),
    ("customerPhone", "138-0013-8000; DROP TABLE customers"),
    # the original's optional fields
    ("resumeId", 5),
    ("resumeId", "r" * 65),
    ("ip", "1" * 65),
    ("ip", ["127.0.0.1"]),
    ("userAgent", "u" * 513),
    ("userAgent", {"ua": "x"}),
    ("customerRecordId", "not-an-id"),
    ("customerRecordId", 7),
    ("timestamp", "t" * 65),
    ("timestamp", 1.5),
    ("timestamp", {"at": 1}),
    ("timestamp", 10**70),
    ("customerInfo", "张三"),
    ("customerInfo", [1]),
    ("customerInfo", nested(6)),
    ("customerInfo", {"blob": "x" * (8 * 1024)}),
    ("customerInfo", nested(400)),
]


@pytest.mark.parametrize(("field", "value"), ACTION_FIELD_CASES, ids=case_ids(ACTION_FIELD_CASES))
async def test_customer_action_refuses_a_bad_field(
    client: httpx.AsyncClient, advisor_id: str, unchanged: None, field: str, value: Any
) -> None:
    body = with_field(action_body(advisor_id), field, value)
    response = await client.post(ACTION_URL, json=body, headers=miniprogram_headers())
    assert_field_error(response, field)


# Values JSON has no room for, which Python's parser accepts all the same.
NON_JSON_NUMBERS = ["NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("field", ["actionData", "customerInfo"])
@pytest.mark.parametrize("number", NON_JSON_NUMBERS)
async def test_customer_action_refuses_numbers_json_does_not_have(
    client: httpx.AsyncClient, advisor_id: str, unchanged: None, field: str, number: str
) -> None:
    text = json.dumps(action_body(advisor_id, **{field: {"score": "PLACEHOLDER"}}))
    content = text.replace('"PLACEHOLDER"', number)
    response = await client.post(
        ACTION_URL,
        content=content,
        headers={**miniprogram_headers(), "content-type": "application/json"},
    )
    assert_field_error(response, field)


# PostgreSQL keeps no NUL character in text or jsonb; such input is refused on every database.
NUL_CASES: list[tuple[str, Any]] = [
    ("customerName", "张\x00三"),
    ("customerPhone", "138\x0000138000"),
    ("resumeId", "r\x00"),
    ("ip", "127.0.0.1\x00"),
    ("userAgent", "Mozilla\x00"),
    ("timestamp", "2024\x00"),
    ("actionData", {"resumeId": "r\x00"}),
    ("actionData", {"k\x00": 1}),
    ("customerInfo", {"name": ["\x00"]}),
]


@pytest.mark.parametrize(("field", "value"), NUL_CASES, ids=case_ids(NUL_CASES))
async def test_customer_action_refuses_nul_characters(
    client: httpx.AsyncClient, advisor_id: str, unchanged: None, field: str, value: Any
) -> None:
    body = with_field(action_body(advisor_id), field, value)
    response = await client.post(ACTION_URL, json=body, headers=miniprogram_headers())
    assert_field_error(response, field)


async def test_customer_action_with_an_unknown_advisor_is_refused(
    client: httpx.AsyncClient, advisor_id: str, unchanged: None
) -> None:
    response = await client.post(
        ACTION_URL, json=action_body(UNKNOWN_ID), headers=miniprogram_headers()
    )
    assert_field_error(response, "advisorId")


@pytest.mark.parametrize("role", [Role.manager, Role.admin])
async def test_customer_action_towards_a_user_who_is_not_an_advisor_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, role: Role
) -> None:
    other = (await add_user(session, role)).id
    before = await row_counts(session)
    response = await client.post(ACTION_URL, json=action_body(other), headers=miniprogram_headers())
    assert_field_error(response, "advisorId")
    assert await row_counts(session) == before


async def test_customer_action_towards_an_inactive_advisor_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    inactive = (await add_user(session, Role.advisor, active=False)).id
    before = await row_counts(session)
    response = await client.post(
        ACTION_URL, json=action_body(inactive), headers=miniprogram_headers()
    )
    assert_field_error(response, "advisorId")
    assert await row_counts(session) == before


async def test_phone_shaped_but_invalid_number_records_the_action_without_a_lead(
    client: httpx.AsyncClient, session: AsyncSession, advisor_id: str
) -> None:
    """`12345678901` is phone-shaped (accepted) but no mainland mobile: no customer is made."""
    before = await row_counts(session)
    response = await client.post(
        ACTION_URL,
        json=action_body(advisor_id, customerPhone="12345678901"),
        headers=miniprogram_headers(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "记录客户行为成功"
    assert body["data"]["customerCreated"] is False
    assert body["data"]["customerId"] is None
    assert body["data"]["customer"] is None
    assert body["data"]["action"]["customerRecordId"] is None
    after = await row_counts(session)
    assert after["customers"] == before["customers"]
    assert after["customer_actions"] == before["customer_actions"] + 1


async def test_action_data_five_levels_deep_is_accepted(
    client: httpx.AsyncClient, session: AsyncSession, advisor_id: str
) -> None:
    """The limits' edge: five levels and just under 8 KiB pass, with a lead made."""
    data = nested(5)
    data_text = json.dumps(data, ensure_ascii=False)
    filler = "x" * (8 * 1024 - len(data_text.encode()) - len(', "f": ""'))
    data["f"] = filler
    assert len(json.dumps(data, ensure_ascii=False).encode()) == 8 * 1024
    before = await row_counts(session)
    response = await client.post(
        ACTION_URL, json=action_body(advisor_id, actionData=data), headers=miniprogram_headers()
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["customerCreated"] is True
    after = await row_counts(session)
    assert after["customers"] == before["customers"] + 1
    assert after["customer_actions"] == before["customer_actions"] + 1


def _forged() -> dict[str, str]:
    return miniprogram_headers(key="another-key-that-is-not-the-servers-0123456789")


def _expired() -> dict[str, str]:
    return miniprogram_headers(issued=datetime.now(UTC) - timedelta(hours=2))


def _garbage() -> dict[str, str]:
    return {"Authorization": "Bearer not.a.jwt"}


def _basic() -> dict[str, str]:
    return {"Authorization": "Basic dXNlcjpwYXNz"}


def _none() -> dict[str, str]:
    return {}


def _unsigned() -> dict[str, str]:
    token = jwt.encode(
        {"sub": OPENID, "typ": "miniprogram", "exp": datetime.now(UTC) + timedelta(hours=1)},
        key="",
        algorithm="none",
    )
    return {"Authorization": f"Bearer {token}"}


BAD_MINIPROGRAM_CREDENTIALS: list[tuple[str, Callable[[], dict[str, str]]]] = [
    ("none", _none),
    ("forged", _forged),
    ("expired", _expired),
    ("garbage", _garbage),
    ("basic", _basic),
    ("unsigned", _unsigned),
]


@pytest.mark.parametrize(
    "make_headers",
    [make for _, make in BAD_MINIPROGRAM_CREDENTIALS],
    ids=[name for name, _ in BAD_MINIPROGRAM_CREDENTIALS],
)
async def test_customer_action_without_a_good_session_token_is_a_401(
    client: httpx.AsyncClient,
    advisor_id: str,
    unchanged: None,
    make_headers: Callable[[], dict[str, str]],
) -> None:
    response = await client.post(ACTION_URL, json=action_body(advisor_id), headers=make_headers())
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_session_token_says_so(
    client: httpx.AsyncClient, advisor_id: str, unchanged: None
) -> None:
    response = await client.post(ACTION_URL, json=action_body(advisor_id), headers=_expired())
    body = assert_error(response, 401, "UNAUTHORIZED")
    assert "过期" in body["message"]


async def test_customer_action_with_a_staff_token_is_a_401(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """The advisor's own token, from a real login, is no mini-program session token."""
    user = await make_user(session, Role.advisor)
    await session.commit()
    headers, advisor_id = await token_for(client, user), user.id
    before = await row_counts(session)
    response = await client.post(ACTION_URL, json=action_body(advisor_id), headers=headers)
    assert_error(response, 401, "UNAUTHORIZED")
    assert await row_counts(session) == before


async def test_customer_action_for_another_openid_is_a_403(
    client: httpx.AsyncClient, advisor_id: str, unchanged: None
) -> None:
    body = action_body(advisor_id, customerId=OTHER_OPENID)
    response = await client.post(ACTION_URL, json=body, headers=miniprogram_headers())
    assert_error(response, 403, "FORBIDDEN")


# -- POST /api/wechat/openid and /api/wechat/phone ---------------------------------------------

CODE_CASES: list[Any] = [MISSING, None, 123, ["code"], {"code": "c"}, "", "   ", "c" * 129]


@pytest.mark.parametrize("value", CODE_CASES, ids=[describe(v) for v in CODE_CASES])
async def test_openid_refuses_a_bad_code(
    client: httpx.AsyncClient, sim_control: SimControl, unchanged: None, value: Any
) -> None:
    response = await client.post(OPENID_URL, json=with_field({"code": "c"}, "code", value))
    assert_field_error(response, "code")


async def test_openid_with_a_code_wechat_does_not_know_is_a_400(
    client: httpx.AsyncClient, sim_control: SimControl, unchanged: None
) -> None:
    response = await client.post(OPENID_URL, json={"code": "never-minted"})
    body = assert_error(response, 400, "BAD_REQUEST")
    assert body["error"]["details"] == {"errcode": 40029}
    assert "token" not in response.text


@pytest.mark.parametrize("value", CODE_CASES, ids=[describe(v) for v in CODE_CASES])
async def test_phone_refuses_a_bad_code(
    client: httpx.AsyncClient, sim_control: SimControl, unchanged: None, value: Any
) -> None:
    response = await client.post(
        PHONE_URL, json=with_field({"code": "c"}, "code", value), headers=miniprogram_headers()
    )
    assert_field_error(response, "code")


async def test_phone_with_a_code_wechat_does_not_know_is_a_400(
    client: httpx.AsyncClient, wechat_token: str, unchanged: None
) -> None:
    response = await client.post(
        PHONE_URL, json={"code": "never-minted"}, headers=miniprogram_headers()
    )
    body = assert_error(response, 400, "BAD_REQUEST")
    assert body["error"]["details"] == {"errcode": 40029}


@pytest.mark.parametrize(
    "make_headers",
    [make for _, make in BAD_MINIPROGRAM_CREDENTIALS],
    ids=[name for name, _ in BAD_MINIPROGRAM_CREDENTIALS],
)
async def test_phone_without_a_good_session_token_is_a_401(
    client: httpx.AsyncClient,
    sim_control: SimControl,
    unchanged: None,
    make_headers: Callable[[], dict[str, str]],
) -> None:
    response = await client.post(PHONE_URL, json={"code": "c"}, headers=make_headers())
    assert_error(response, 401, "UNAUTHORIZED")


async def test_phone_with_a_staff_token_is_a_401(
    client: httpx.AsyncClient, advisor: Staff, sim_control: SimControl, unchanged: None
) -> None:
    response = await client.post(PHONE_URL, json={"code": "c"}, headers=advisor.headers)
    assert_error(response, 401, "UNAUTHORIZED")


# -- POST /api/advisor/subscribe ----------------------------------------------------------------


def subscribe_body(advisor_id: str) -> dict[str, Any]:
    return {
        "advisorId": advisor_id,
        "openid": "o-advisor-openid",
        "templateId": ACTION_TEMPLATE,
        "subscribed": True,
        "subscribeData": {
            "source": "miniprogram",
            "timestamp": "2024-01-01T12:00:00.000Z",
            "userAgent": {},
            "subscriptionStatus": "accept",
        },
    }


SUBSCRIBE_FIELD_CASES: list[tuple[str, Any]] = [
    ("advisorId", MISSING),
    ("advisorId", None),
    ("advisorId", 12345),
    ("advisorId", ""),
    ("advisorId", "advisor_123"),
    ("openid", MISSING),
    ("openid", None),
    ("openid", 12345),
    ("openid", ""),
    ("openid", "o" * 65),
    ("openid", "o\x00"),
    ("templateId", MISSING),
    ("templateId", None),
    ("templateId", ["t"]),
    ("templateId", ""),
    ("templateId", "t" * 129),
    ("templateId", "t\x00"),
    ("subscribed", MISSING),
    ("subscribed", None),
    ("subscribed", "maybe"),
    ("subscribed", [True]),
    ("subscribed", 2),
    ("subscribeData", "accept"),
    ("subscribeData", ["accept"]),
    ("subscribeData.subscriptionStatus", "whatever"),
    ("subscribeData.subscriptionStatus", 1),
    ("subscribeData.source", "s" * 65),
    ("subscribeData.source", 1),
    ("subscribeData.timestamp", "t" * 65),
    ("subscribeData.userAgent", 5),
]


@pytest.mark.parametrize(
    ("field", "value"), SUBSCRIBE_FIELD_CASES, ids=case_ids(SUBSCRIBE_FIELD_CASES)
)
async def test_subscribe_refuses_a_bad_field(
    client: httpx.AsyncClient, advisor: Staff, unchanged: None, field: str, value: Any
) -> None:
    body = with_field(subscribe_body(advisor.id), field, value)
    response = await client.post(SUBSCRIBE_URL, json=body, headers=advisor.headers)
    assert_field_error(response, field)


# subscribeData is the client's free-form JSON too, stored as it came: bounded like actionData.
SUBSCRIBE_DATA_CASES: list[tuple[str, Any]] = [
    ("too large", {"blob": "x" * (8 * 1024)}),
    ("too deep", {"extra": nested(6)}),
    ("far too deep", {"extra": nested(400)}),
    ("nul in an extra field", {"extra": "a\x00b"}),
    ("nul in userAgent", {"userAgent": {"model": "\x00"}}),
]


@pytest.mark.parametrize(
    "data", [data for _, data in SUBSCRIBE_DATA_CASES], ids=[n for n, _ in SUBSCRIBE_DATA_CASES]
)
async def test_subscribe_refuses_unbounded_subscribe_data(
    client: httpx.AsyncClient, advisor: Staff, unchanged: None, data: dict[str, Any]
) -> None:
    body = subscribe_body(advisor.id) | {"subscribeData": data}
    response = await client.post(SUBSCRIBE_URL, json=body, headers=advisor.headers)
    assert_field_error(response, "subscribeData")


async def test_subscribe_refuses_nan_in_subscribe_data(
    client: httpx.AsyncClient, advisor: Staff, unchanged: None
) -> None:
    text = json.dumps(subscribe_body(advisor.id) | {"subscribeData": {"score": "PLACEHOLDER"}})
    response = await client.post(
        SUBSCRIBE_URL,
        content=text.replace('"PLACEHOLDER"', "NaN"),
        headers={**advisor.headers, "content-type": "application/json"},
    )
    assert_field_error(response, "subscribeData")


async def test_subscribe_for_another_advisor_is_a_403(
    client: httpx.AsyncClient, session: AsyncSession, advisor: Staff
) -> None:
    other = (await add_user(session, Role.advisor)).id
    before = await row_counts(session)
    response = await client.post(SUBSCRIBE_URL, json=subscribe_body(other), headers=advisor.headers)
    assert_error(response, 403, "FORBIDDEN")
    assert await row_counts(session) == before


async def test_subscribe_for_an_openid_not_the_advisors_own_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, advisor: Staff
) -> None:
    user = await session.get(User, advisor.id)
    assert user is not None
    user.openid = "o-the-advisors-own"
    await session.commit()
    before = await row_counts(session)
    response = await client.post(
        SUBSCRIBE_URL, json=subscribe_body(advisor.id), headers=advisor.headers
    )
    assert_field_error(response, "openid")
    assert await row_counts(session) == before


async def test_subscribe_with_a_miniprogram_token_is_a_401(
    client: httpx.AsyncClient, advisor_id: str, unchanged: None
) -> None:
    response = await client.post(
        SUBSCRIBE_URL, json=subscribe_body(advisor_id), headers=miniprogram_headers()
    )
    assert_error(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "make_headers", [_none, _garbage, _basic], ids=["none", "garbage", "basic"]
)
async def test_subscribe_without_a_staff_token_is_a_401(
    client: httpx.AsyncClient,
    advisor_id: str,
    unchanged: None,
    make_headers: Callable[[], dict[str, str]],
) -> None:
    response = await client.post(
        SUBSCRIBE_URL, json=subscribe_body(advisor_id), headers=make_headers()
    )
    assert_error(response, 401, "UNAUTHORIZED")


async def test_subscribe_with_a_forged_staff_token_is_a_401(
    client: httpx.AsyncClient, advisor_id: str, unchanged: None
) -> None:
    token = create_token(
        "another-key-that-is-not-the-servers-0123456789",
        advisor_id,
        "staff",
        timedelta(hours=1),
        claims={"role": "admin"},
    )
    response = await client.post(
        SUBSCRIBE_URL,
        json=subscribe_body(advisor_id),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_error(response, 401, "UNAUTHORIZED")


# -- POST /api/message/send ---------------------------------------------------------------------


def send_body() -> dict[str, Any]:
    return {
        "touser": "o-advisor-openid",
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


SEND_FIELD_CASES: list[tuple[str, Any]] = [
    ("touser", MISSING),
    ("touser", None),
    ("touser", 12345),
    ("touser", ""),
    ("touser", "o" * 65),
    ("touser", "o\x00"),
    ("template_id", MISSING),
    ("template_id", None),
    ("template_id", ""),
    ("template_id", "t" * 129),
    ("template_id", {"id": "t"}),
    ("data", MISSING),
    ("data", None),
    ("data", {}),
    ("data", "thing1=x"),
    ("data", [{"value": "x"}]),
    ("data", {"thing1": "bare text"}),
    ("data", {"thing1": {}}),
    ("data", {"thing1": {"value": None}}),
    ("data", {"thing1": {"value": ["x"]}}),
    ("data", {"thing1": {"value": {"nested": "x"}}}),
    ("data", {f"thing{i}": {"value": "x"} for i in range(31)}),
    ("data", {"bogus1": {"value": "x"}}),
    ("data", {"thing": {"value": "x"}}),
    ("data", {"time2": {"value": "not a time"}}),
    ("page", "p" * 257),
    ("page", 5),
    ("miniprogram_state", "production"),
    ("miniprogram_state", 1),
    ("lang", "fr_FR"),
]


@pytest.mark.parametrize(("field", "value"), SEND_FIELD_CASES, ids=case_ids(SEND_FIELD_CASES))
async def test_send_refuses_a_bad_field(
    client: httpx.AsyncClient,
    manager: Staff,
    sim_control: SimControl,
    unchanged: None,
    field: str,
    value: Any,
) -> None:
    response = await client.post(
        SEND_URL, json=with_field(send_body(), field, value), headers=manager.headers
    )
    assert_field_error(response, field)
    assert await sim_control.messages() == []


async def test_send_by_an_advisor_is_a_403(
    client: httpx.AsyncClient, advisor: Staff, sim_control: SimControl, unchanged: None
) -> None:
    response = await client.post(SEND_URL, json=send_body(), headers=advisor.headers)
    assert_error(response, 403, "FORBIDDEN")
    assert await sim_control.messages() == []


@pytest.mark.parametrize(
    "make_headers",
    [miniprogram_headers, _none, _garbage, _forged],
    ids=["miniprogram", "none", "garbage", "forged"],
)
async def test_send_without_a_staff_token_is_a_401(
    client: httpx.AsyncClient,
    sim_control: SimControl,
    unchanged: None,
    make_headers: Callable[[], dict[str, str]],
) -> None:
    response = await client.post(SEND_URL, json=send_body(), headers=make_headers())
    assert_error(response, 401, "UNAUTHORIZED")
    assert await sim_control.messages() == []


# -- bodies that are no JSON object, or too large, on every endpoint ------------------------------

ENDPOINTS = [OPENID_URL, PHONE_URL, SUBSCRIBE_URL, ACTION_URL, SEND_URL]


@pytest.fixture(params=ENDPOINTS)
def endpoint(request: pytest.FixtureRequest, sim_control: SimControl) -> tuple[str, dict[str, str]]:
    """An endpoint, with the credentials it wants (staff made only where needed)."""
    url: str = request.param
    if url == OPENID_URL:
        return url, {}
    if url in (PHONE_URL, ACTION_URL):
        return url, miniprogram_headers()
    staff: Staff = request.getfixturevalue("advisor" if url == SUBSCRIBE_URL else "manager")
    return url, staff.headers


JSON = {"content-type": "application/json"}

BODY_CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("array", b"[]", JSON, 400, "VALIDATION_ERROR"),
    ("array of objects", b'[{"code": "c"}]', JSON, 400, "VALIDATION_ERROR"),
    ("string", b'"code"', JSON, 400, "VALIDATION_ERROR"),
    ("number", b"42", JSON, 400, "VALIDATION_ERROR"),
    ("null", b"null", JSON, 400, "VALIDATION_ERROR"),
    ("empty", b"", JSON, 400, "VALIDATION_ERROR"),
    ("malformed", b'{"code": ', JSON, 400, "VALIDATION_ERROR"),
    ("trailing garbage", b'{"code": "c"} x', JSON, 400, "VALIDATION_ERROR"),
    ("not utf-8", b'{"code": "\xff\xfe"}', JSON, 400, "BAD_REQUEST"),
    ("nested past the parser", b"[" * 200_000 + b"]" * 200_000, JSON, 400, "BAD_REQUEST"),
    ("text/plain", b'{"code": "c"}', {"content-type": "text/plain"}, 400, "VALIDATION_ERROR"),
    (
        "form",
        b"code=c",
        {"content-type": "application/x-www-form-urlencoded"},
        400,
        "VALIDATION_ERROR",
    ),
]


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [case[1:] for case in BODY_CASES],
    ids=[case[0] for case in BODY_CASES],
)
async def test_a_body_that_is_no_json_object_is_refused(
    client: httpx.AsyncClient,
    endpoint: tuple[str, dict[str, str]],
    session: AsyncSession,
    content: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    url, auth = endpoint
    before = await row_counts(session)
    response = await client.post(url, content=content, headers={**auth, **headers})
    assert_error(response, status, code)
    assert await row_counts(session) == before


async def test_a_declared_body_over_one_mib_is_a_413(
    client: httpx.AsyncClient,
    endpoint: tuple[str, dict[str, str]],
    session: AsyncSession,
) -> None:
    url, auth = endpoint
    before = await row_counts(session)
    content = json.dumps({"code": "c", "padding": "x" * ONE_MIB}).encode()
    response = await client.post(url, content=content, headers={**auth, **JSON})
    body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"] == {"maxBytes": ONE_MIB}
    assert await row_counts(session) == before


async def test_a_streamed_body_over_one_mib_is_a_413(
    client: httpx.AsyncClient,
    endpoint: tuple[str, dict[str, str]],
    session: AsyncSession,
) -> None:
    url, auth = endpoint
    before = await row_counts(session)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"code": "c", "padding": "'
        for _ in range(17):
            yield b"x" * 64 * 1024
        yield b'"}'

    response = await client.post(url, content=chunks(), headers={**auth, **JSON})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert await row_counts(session) == before
