"""The four assignment endpoints as an admin or manager: customers move, one
history row each, one notification per assignment (at the simulator, directly or through
the cloud function), responses as the original's, and a failing WeChat that fails nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ASSIGN_TEMPLATE, assert_error
from tests.customers.conftest import (
    Team,
    count,
    deliver_until_settled,
    give_credits,
    make_team,
    worker_for,
)
from tests.factories import add_customer, add_user, mp_headers
from wxcrm.core.db import Database
from wxcrm.core.ids import new_id
from wxcrm.core.settings import Settings
from wxcrm.customers.models import AssignmentHistory, Customer
from wxcrm.notifications.models import Notification, NotificationAttempt
from wxcrm.notifications.subscriptions import NO_CREDIT, NO_OPENID, available_credits
from wxcrm.users.models import Role
from wxcrm.wechat.keywords import SHANGHAI
from wxcrm.wechat.sim import SimControl
from wxcrm.wechat.sim.state import Endpoint

SINGLE = ["console", "miniprogram"]
BATCH = ["batch", "pool"]
ENDPOINTS = SINGLE + BATCH
# How each endpoint records its assignments, and what the message says without a reason.
CHANNEL = {
    "console": "console",
    "miniprogram": "miniprogram",
    "batch": "batch",
    "pool": "pool_assign",
}
DEFAULT_SOURCE = {
    "console": "手动分配",
    "miniprogram": "手动分配",
    "batch": "批量分配",
    "pool": "从公海分配",
}
NOTIFICATION_KEYS = {
    "assignedToId",
    "customerName",
    "source",
    "assignerName",
    "customerId",
    "assignTime",
    "customerPhone",
    "serviceCategory",
    "leadSource",
}
REASON_FIELD = {
    "console": "assignmentReason",
    "miniprogram": "assignmentReason",
    "batch": "assignmentReason",
    "pool": "reason",
}


async def assign(
    client: httpx.AsyncClient,
    endpoint: str,
    headers: dict[str, str],
    customer_ids: list[str],
    to: str,
    reason: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"assignedTo": to}
    if reason is not None:
        body[REASON_FIELD[endpoint]] = reason
    if endpoint == "console":
        return await client.patch(
            f"/api/customers/{customer_ids[0]}/assign", json=body, headers=headers
        )
    if endpoint == "miniprogram":
        return await client.patch(
            f"/api/customers/miniprogram/{customer_ids[0]}/assign", json=body, headers=headers
        )
    path = (
        "/api/customers/batch-assign"
        if endpoint == "batch"
        else "/api/customers/public-pool/assign"
    )
    return await client.post(path, json=body | {"customerIds": customer_ids}, headers=headers)


def ok(response: httpx.Response, message: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["message"] == message
    data: dict[str, Any] = body["data"]
    return data


def batch_message(endpoint: str, success: int, failed: int) -> str:
    prefix = "批量分配完成" if endpoint == "batch" else "分配完成"
    return f"{prefix}：成功 {success} 个，失败 {failed} 个"


async def history(session: AsyncSession) -> list[AssignmentHistory]:
    rows = await session.scalars(select(AssignmentHistory).order_by(AssignmentHistory.id))
    return list(rows.all())


async def notifications(session: AsyncSession) -> list[Notification]:
    return list((await session.scalars(select(Notification))).all())


async def owners(session: AsyncSession, *customers: Customer) -> list[str | None]:
    ids = [customer.id for customer in customers]
    result = await session.execute(select(Customer.id, Customer.owner_id))
    rows: dict[str, str | None] = dict(result.all())
    return [rows[customer_id] for customer_id in ids]


def wechat_time(value: str) -> str:
    """How the assignment's time appears in a `time` keyword: China's wall clock."""
    return datetime.fromisoformat(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
async def bound_team(session: AsyncSession) -> Team:
    """Advisors with bound openids, the second one (the assignee) with credits."""
    team = await make_team(session, advisor_openids=True)
    await give_credits(session, team.other)
    return team


# -- one customer -----------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "客户指定"])
@pytest.mark.parametrize("endpoint", SINGLE)
@pytest.mark.parametrize("role", ["admin", "manager"])
async def test_one_customer_is_assigned(
    client: httpx.AsyncClient,
    session: AsyncSession,
    bound_team: Team,
    role: str,
    endpoint: str,
    reason: str | None,
) -> None:
    team = bound_team
    by = team.member(role)
    customer = await add_customer(
        session, team.advisor, name="孙女士", service_category="月嫂", lead_source="美团"
    )
    response = await assign(
        client, endpoint, team.headers(role), [customer.id], team.other.id, reason
    )
    data = ok(response, "客户分配成功")

    # The updated customer (its number as customerId, as the original's record spread over
    # its _id); no answer tells the caller the advisor's openid.
    assert data["_id"] == customer.id and data["name"] == "孙女士"
    assert data["customerId"] == customer.customer_no
    assert data["assignedTo"] == team.other.id and data["assignedBy"] == by.id
    assert data["inPublicPool"] is False and data["assignedAt"]
    assert data["assignmentReason"] == reason
    assert data["notificationData"] == {
        "assignedToId": team.other.id,
        "customerName": "孙女士",
        "source": reason or "手动分配",
        "assignerName": by.name,
        "customerId": customer.id,
        "assignTime": data["notificationData"]["assignTime"],
        "customerPhone": customer.phone,
        "serviceCategory": "月嫂",
        "leadSource": "美团",
    }
    assert datetime.fromisoformat(data["notificationData"]["assignTime"]) == datetime.fromisoformat(
        data["assignedAt"]
    )

    assert await owners(session, customer) == [team.other.id]
    [row] = await history(session)
    assert (row.customer_id, row.from_user_id, row.to_user_id, row.by_user_id) == (
        customer.id,
        team.advisor.id,
        team.other.id,
        by.id,
    )
    assert (row.reason, row.channel) == (reason, CHANNEL[endpoint])

    [note] = await notifications(session)
    assert (note.status, note.channel, note.event) == ("pending", "direct", "customer_assigned")
    assert (note.advisor_id, note.template_id) == (team.other.id, ASSIGN_TEMPLATE)
    assert note.payload == {
        "template": "customer_assigned",
        "values": {
            "customer_name": "孙女士",
            "reason": reason or "手动分配",
            "assigner": by.name,
            "time": data["notificationData"]["assignTime"],
        },
        "page": f"pages/customer/detail?id={customer.id}",
    }


async def test_a_customer_of_the_pool_is_assigned_one_by_one_too(
    client: httpx.AsyncClient, session: AsyncSession, bound_team: Team
) -> None:
    customer = await add_customer(session, None, pool_entry_reason="客户不需要了")
    response = await assign(
        client, "console", bound_team.headers("manager"), [customer.id], bound_team.other.id
    )
    data = ok(response, "客户分配成功")
    assert data["inPublicPool"] is False and data["publicPoolEntryTime"] is None
    assert data["publicPoolEntryReason"] is None
    [row] = await history(session)
    assert row.from_user_id is None and row.to_user_id == bound_team.other.id


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("unknown", 404, "客户不存在"),
        ("already owned", 409, "客户已分配给该顾问"),
        ("frozen", 409, "客户已冻结，不能分配"),
    ],
)
async def test_one_customer_that_cannot_be_assigned(
    client: httpx.AsyncClient,
    session: AsyncSession,
    bound_team: Team,
    case: str,
    status: int,
    message: str,
) -> None:
    """(The mini program's refusals are tests/customers/staffapp's.)"""
    team = bound_team
    owned = await add_customer(session, team.other)
    frozen = await add_customer(session, team.advisor, is_frozen=True)
    customer_id = {"unknown": new_id(), "already owned": owned.id, "frozen": frozen.id}[case]
    response = await assign(
        client, "console", team.headers("manager"), [customer_id], team.other.id
    )
    body = assert_error(response, status, "NOT_FOUND" if status == 404 else "CONFLICT")
    assert body["message"] == message
    assert await owners(session, owned, frozen) == [team.other.id, team.advisor.id]
    assert await history(session) == [] and await notifications(session) == []


# -- batches ------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "顾问离职交接"])
async def test_a_batch_reports_each_customer(
    client: httpx.AsyncClient, session: AsyncSession, bound_team: Team, reason: str | None
) -> None:
    team = bound_team
    first = await add_customer(session, team.advisor, name="一号")
    pooled = await add_customer(session, None, name="二号")
    owned = await add_customer(session, team.other)
    frozen = await add_customer(session, team.advisor, is_frozen=True)
    unknown = new_id()
    ids = [first.id, unknown, pooled.id, owned.id, frozen.id, first.id]
    response = await assign(client, "batch", team.headers("admin"), ids, team.other.id, reason)
    data = ok(response, "批量分配完成：成功 2 个，失败 3 个")
    assert (data["success"], data["failed"]) == (2, 3)
    assert data["errors"] == [
        {"customerId": unknown, "error": "客户不存在"},
        {"customerId": owned.id, "error": "客户已分配给该顾问"},
        {"customerId": frozen.id, "error": "客户已冻结，不能分配"},
    ]
    notification_data = data["notificationData"]
    assert set(notification_data) == NOTIFICATION_KEYS
    assert notification_data["customerName"] == "2个客户"
    assert notification_data["source"] == (reason or "批量分配")
    assert notification_data["customerId"] == first.id
    assert notification_data["assignerName"] == "李管理"
    assert notification_data["assignedToId"] == team.other.id

    assert await owners(session, first, pooled, owned, frozen) == [
        team.other.id,
        team.other.id,
        team.other.id,
        team.advisor.id,
    ]
    rows = {row.customer_id: row for row in await history(session)}
    assert set(rows) == {first.id, pooled.id}
    assert rows[first.id].from_user_id == team.advisor.id and rows[pooled.id].from_user_id is None
    for row in rows.values():
        assert (row.to_user_id, row.by_user_id, row.reason, row.channel) == (
            team.other.id,
            team.admin.id,
            reason,
            "batch",
        )
    [note] = await notifications(session)  # one for the batch
    assert note.payload["values"]["customer_name"] == "2个客户"
    assert note.payload["page"] == f"pages/customer/detail?id={first.id}"


@pytest.mark.parametrize("reason", [None, "新人扶持"])
async def test_assigning_from_the_pool_takes_only_customers_of_the_pool(
    client: httpx.AsyncClient, session: AsyncSession, bound_team: Team, reason: str | None
) -> None:
    team = bound_team
    first = await add_customer(session, None, name="公海一")
    second = await add_customer(session, None, name="公海二")
    owned = await add_customer(session, team.advisor)
    frozen = await add_customer(session, None, is_frozen=True)
    unknown = new_id()
    ids = [first.id, owned.id, unknown, second.id, frozen.id]
    response = await assign(client, "pool", team.headers("manager"), ids, team.other.id, reason)
    data = ok(response, "分配完成：成功 2 个，失败 3 个")
    assert (data["success"], data["failed"]) == (2, 3)
    assert data["errors"] == [
        {"customerId": owned.id, "error": "客户不在公海中"},
        {"customerId": unknown, "error": "客户不存在"},
        {"customerId": frozen.id, "error": "客户已冻结，不能分配"},
    ]
    assert data["notificationData"]["customerName"] == "2个客户"
    assert data["notificationData"]["source"] == (reason or "从公海分配")
    assert data["notificationData"]["customerId"] == first.id
    assert await owners(session, first, second, owned, frozen) == [
        team.other.id,
        team.other.id,
        team.advisor.id,
        None,
    ]
    rows = await history(session)
    assert sorted(row.customer_id for row in rows) == sorted([first.id, second.id])
    assert {(row.from_user_id, row.reason, row.channel) for row in rows} == {
        (None, reason, "pool_assign")
    }
    assert len(await notifications(session)) == 1
    listed = await client.get(
        "/api/customers", params={"inPublicPool": "true"}, headers=team.headers("manager")
    )
    assert [item["_id"] for item in listed.json()["data"]["items"]] == [frozen.id]


@pytest.mark.parametrize("endpoint", BATCH)
async def test_a_batch_where_nothing_moves_notifies_no_one(
    client: httpx.AsyncClient, session: AsyncSession, bound_team: Team, endpoint: str
) -> None:
    owned = await add_customer(session, bound_team.other)
    ids = [owned.id, new_id()]
    response = await assign(client, endpoint, bound_team.headers("admin"), ids, bound_team.other.id)
    data = ok(response, batch_message(endpoint, 0, 2))
    assert (data["success"], data["failed"], data["notificationData"]) == (0, 2, None)
    assert [error["customerId"] for error in data["errors"]] == ids
    assert await history(session) == [] and await notifications(session) == []


@pytest.mark.parametrize("endpoint", BATCH)
async def test_a_batch_that_moves_one_customer_is_still_named_as_a_batch(
    client: httpx.AsyncClient, session: AsyncSession, bound_team: Team, endpoint: str
) -> None:
    """As the original's batch notification: for a batch,
    customerName is `N个客户` and source the reason or 批量分配 / 从公海分配."""
    customer = await add_customer(session, None, name="唯一的")
    ids = [customer.id, new_id()]
    response = await assign(client, endpoint, bound_team.headers("admin"), ids, bound_team.other.id)
    data = ok(response, batch_message(endpoint, 1, 1))
    assert data["notificationData"]["customerName"] == "1个客户"
    assert data["notificationData"]["source"] == DEFAULT_SOURCE[endpoint]


# -- who may assign, and what is refused --------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("to", ["self", "other"])
async def test_advisors_may_not_assign(
    client: httpx.AsyncClient, session: AsyncSession, bound_team: Team, endpoint: str, to: str
) -> None:
    team = bound_team
    own = await add_customer(session, team.advisor)
    pooled = await add_customer(session, None)
    target = team.advisor if to == "self" else team.other
    customer = pooled if endpoint == "pool" else own
    response = await assign(client, endpoint, team.headers("advisor"), [customer.id], target.id)
    if endpoint == "miniprogram":  # the mini program's failure style: 200, success false
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["success"], body["data"]) == (False, None)
        assert body["message"] == body["error"] == "无权限分配客户"
    else:
        assert_error(response, 403, "FORBIDDEN")
    assert await owners(session, own, pooled) == [team.advisor.id, None]
    assert await history(session) == [] and await notifications(session) == []


def _bad_bodies() -> list[tuple[str, str, dict[str, Any], str]]:
    """(endpoint, case, body changes, the field the 400 names)."""
    cases: list[tuple[str, str, dict[str, Any], str]] = []
    for endpoint in ENDPOINTS:
        reason = REASON_FIELD[endpoint]
        if endpoint != "miniprogram":  # the mini program refuses them in its own style
            cases += [
                (endpoint, "unknown assignee", {"assignedTo": "{unknown}"}, "assignedTo"),
                (endpoint, "inactive assignee", {"assignedTo": "{inactive}"}, "assignedTo"),
            ]
        cases += [
            (endpoint, "malformed assignee", {"assignedTo": "nobody"}, "assignedTo"),
            (endpoint, "no assignee", {"assignedTo": None}, "assignedTo"),
            (endpoint, "reason too long", {reason: "因" * 201}, reason),
            (endpoint, "reason not text", {reason: 42}, reason),
        ]
    for endpoint in BATCH:
        cases += [
            (endpoint, "no customers", {"customerIds": []}, "customerIds"),
            (endpoint, "malformed customer id", {"customerIds": ["{id}", "x"]}, "customerIds.1"),
            (endpoint, "customer ids not a list", {"customerIds": "{id}"}, "customerIds"),
        ]
    cases.append(
        ("pool", "the batch's reason field", {"assignmentReason": "x"}, "assignmentReason")
    )
    cases.append(("console", "the pool's reason field", {"reason": "x"}, "reason"))
    return cases


@pytest.mark.parametrize(
    ("endpoint", "case", "changes", "field"),
    _bad_bodies(),
    ids=[f"{endpoint}-{case}" for endpoint, case, _, _ in _bad_bodies()],
)
async def test_a_bad_assignment_is_a_400_naming_the_field(
    client: httpx.AsyncClient,
    session: AsyncSession,
    bound_team: Team,
    endpoint: str,
    case: str,
    changes: dict[str, Any],
    field: str,
) -> None:
    team = bound_team
    customer = await add_customer(session, None if endpoint == "pool" else team.advisor)
    inactive = await add_user(session, Role.advisor, active=False)
    values = {"{unknown}": new_id(), "{inactive}": inactive.id, "{id}": customer.id}
    body: dict[str, Any] = {"assignedTo": team.other.id}
    for key, value in changes.items():
        if isinstance(value, list):
            value = [values.get(item, item) for item in value]
        elif isinstance(value, str):
            value = values.get(value, value)
        body[key] = value
    if endpoint in BATCH:
        body.setdefault("customerIds", [customer.id])
        path = (
            "/api/customers/batch-assign"
            if endpoint == "batch"
            else "/api/customers/public-pool/assign"
        )
        response = await client.post(path, json=body, headers=team.headers("manager"))
    else:
        prefix = "/api/customers/miniprogram" if endpoint == "miniprogram" else "/api/customers"
        response = await client.patch(
            f"{prefix}/{customer.id}/assign", json=body, headers=team.headers("manager")
        )
    details = assert_error(response, 400, "VALIDATION_ERROR")["error"]["details"]
    assert [d["field"] for d in details] == [field]
    assert await owners(session, customer) == [customer.owner_id]
    assert await history(session) == [] and await notifications(session) == []


# -- what the notification row says when it cannot be sent ------------------------------------


@pytest.mark.parametrize(
    ("bound", "credits", "reason"), [(False, 5, NO_OPENID), (True, 0, NO_CREDIT)]
)
async def test_an_advisor_who_cannot_be_notified_is_still_assigned(
    client: httpx.AsyncClient,
    session: AsyncSession,
    team: Team,
    bound: bool,
    credits: int,
    reason: str,
) -> None:
    assignee = await add_user(session, Role.advisor, openid="o-cust-assignee" if bound else None)
    if credits:
        await give_credits(session, assignee, credits)
    customer = await add_customer(session, team.advisor)
    response = await assign(client, "console", team.headers("manager"), [customer.id], assignee.id)
    data = ok(response, "客户分配成功")
    assert data["assignedTo"] == assignee.id
    assert "assignedToOpenid" not in data["notificationData"]
    [note] = await notifications(session)
    assert (note.status, note.skip_reason) == ("skipped", reason)
    assert await count(session, AssignmentHistory) == 1


# -- the message at the simulator, directly or through the cloud function -----------------------


async def _committed_setup(database: Database, endpoint: str) -> tuple[Team, list[Customer]]:
    """A team (the assignee bound, one credit in our ledger) and the customers to assign."""
    async with database.writer() as session:
        team = await make_team(session, advisor_openids=True)
        owner = None if endpoint == "pool" else team.advisor
        customers = [
            await add_customer(
                session, owner, name=f"客户{n}", service_category="保洁", lead_source="抖音"
            )
            for n in range(1 if endpoint in SINGLE else 2)
        ]
        await give_credits(session, team.other, credits=1)
    return team, customers


async def _committed_owners(database: Database, customers: list[Customer]) -> list[str | None]:
    async with database.reader() as session:
        return await owners(session, *customers)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_one_message_reaches_the_advisor(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    sim_control: SimControl,
    endpoint: str,
) -> None:
    team, customers = await _committed_setup(database, endpoint)
    assert team.other.openid
    await sim_control.grant(team.other.openid, ASSIGN_TEMPLATE, 1)
    ids = [customer.id for customer in customers]
    response = await assign(live_client, endpoint, team.headers("manager"), ids, team.other.id)
    assert response.status_code == 200, response.text
    notification_data = response.json()["data"]["notificationData"]

    [row] = await deliver_until_settled(worker_for(committed_app, database), database)
    assert row.status == "sent" and row.attempts == 1
    [message] = await sim_control.messages()
    assert message["touser"] == team.other.openid
    assert message["template_id"] == ASSIGN_TEMPLATE
    assert message["page"] == f"pages/customer/detail?id={ids[0]}"
    assert (message["miniprogram_state"], message["lang"]) == ("formal", "zh_CN")
    assert message["data"] == {
        "thing1": {"value": "客户0" if endpoint in SINGLE else "2个客户"},
        "thing2": {"value": DEFAULT_SOURCE[endpoint]},
        "name3": {"value": "王经理"},
        "time4": {"value": wechat_time(notification_data["assignTime"])},
    }
    assert await sim_control.invocations() == []
    async with database.reader() as session:
        assert await available_credits(session, team.other.id, ASSIGN_TEMPLATE) == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_through_the_cloud_function_one_invocation_with_the_seeds_event(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    fast_settings: Settings,
    sim_control: SimControl,
    endpoint: str,
) -> None:
    committed_app.state.settings = fast_settings.model_copy(update={"notify_channel": "cloud"})
    team, customers = await _committed_setup(database, endpoint)
    ids = [customer.id for customer in customers]
    response = await assign(
        live_client, endpoint, team.headers("admin"), ids, team.other.id, "节后分配"
    )
    assert response.status_code == 200, response.text
    notification_data = response.json()["data"]["notificationData"]
    single = endpoint in SINGLE
    # The function is given the advisor's openid; no answer shows it.
    event_data = {
        "assignedToId": team.other.id,
        "assignedToOpenid": team.other.openid,
        "customerName": "客户0" if single else "2个客户",
        "source": "节后分配",
        "assignerName": "李管理",
        "customerId": ids[0],
        "assignTime": notification_data["assignTime"],
        "customerPhone": customers[0].phone if single else "",
        "serviceCategory": "保洁" if single else "",
        "leadSource": "抖音" if single else "",
    }
    assert notification_data == {k: v for k, v in event_data.items() if k != "assignedToOpenid"}

    [row] = await deliver_until_settled(worker_for(committed_app, database), database)
    assert (row.status, row.channel) == ("sent", "cloud")
    [invocation] = await sim_control.invocations()
    assert (invocation["env"], invocation["name"]) == ("cloud1-test", "quickstartFunctions")
    assert invocation["event"] == {
        "type": "sendCustomerAssignNotify",
        "notificationData": event_data,
    }
    assert await sim_control.messages() == []  # the function sends it, not us


FAULTS = [
    # (channel, endpoint, the simulator's fault)
    ("direct", "console", {"errcode": -1}),
    ("direct", "batch", {"http_status": 503}),
    ("cloud", "miniprogram", {"errcode": -1}),
    ("cloud", "pool", {"http_status": 503}),
]


@pytest.mark.parametrize(
    ("channel", "endpoint", "fault"),
    FAULTS,
    ids=[
        f"{channel}-{endpoint}-{'-'.join(map(str, fault.values()))}"
        for channel, endpoint, fault in FAULTS
    ],
)
async def test_a_failing_wechat_fails_nothing_and_the_message_follows(
    committed_app: FastAPI,
    live_client: httpx.AsyncClient,
    database: Database,
    fast_settings: Settings,
    sim_control: SimControl,
    channel: str,
    endpoint: str,
    fault: dict[str, int],
) -> None:
    committed_app.state.settings = fast_settings.model_copy(update={"notify_channel": channel})
    team, customers = await _committed_setup(database, endpoint)
    assert team.other.openid
    await sim_control.grant(team.other.openid, ASSIGN_TEMPLATE, 1)
    wechat_endpoint: Endpoint = "subscribe_send" if channel == "direct" else "invokecloudfunction"
    await sim_control.fault(
        wechat_endpoint,
        count=3,
        errcode=fault.get("errcode"),
        http_status=fault.get("http_status"),
    )

    ids = [customer.id for customer in customers]
    response = await assign(live_client, endpoint, team.headers("manager"), ids, team.other.id)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    assert await sim_control.messages() == [] and await sim_control.invocations() == []
    # Committed at once: another session sees the customers moved.
    assert await _committed_owners(database, customers) == [team.other.id] * len(customers)

    [row] = await deliver_until_settled(worker_for(committed_app, database), database)
    assert (row.status, row.attempts, row.last_errcode) == ("sent", 4, None)
    async with database.reader() as session:
        attempts = await session.scalars(
            select(NotificationAttempt).order_by(NotificationAttempt.number)
        )
        tries = [(a.number, a.outcome, a.errcode, a.http_status) for a in attempts]
    failed = ("pending", fault.get("errcode"), fault.get("http_status"))  # to be tried again
    assert tries == [(1, *failed), (2, *failed), (3, *failed), (4, "sent", None, None)]
    sent = await sim_control.messages() if channel == "direct" else await sim_control.invocations()
    assert len(sent) == 1
    if channel == "direct":
        async with database.reader() as session:  # the failures cost no credit
            assert await available_credits(session, team.other.id, ASSIGN_TEMPLATE) == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_mini_program_customers_token_may_not_assign(
    client: httpx.AsyncClient, session: AsyncSession, bound_team: Team, endpoint: str
) -> None:
    """The mini-program form takes a staff token; a customer's session token is not one."""
    customer = await add_customer(session, None)
    headers = mp_headers("o-some-customer")
    response = await assign(client, endpoint, headers, [customer.id], bound_team.other.id)
    assert_error(response, 401, "UNAUTHORIZED")
    assert await owners(session, customer) == [None]
    assert await history(session) == [] and await notifications(session) == []
