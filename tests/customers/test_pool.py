"""The public pool (公海): the list, claims and their limits, releases, the cooling period,
concurrent claims, and the job that recycles neglected customers."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE, assert_error
from tests.factories import add_customer, add_user, committed_advisor, make_customer, staff_headers
from wxcrm.core.db import Database
from wxcrm.core.ids import new_id
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.batch import Failure, Refusal
from wxcrm.customers.models import AssignmentHistory, Customer
from wxcrm.customers.pool import service as pool_service
from wxcrm.customers.pool.service import RecycleResult, day_start, recycle_to_pool
from wxcrm.jobs import scheduled_jobs
from wxcrm.notifications.models import Notification, NotificationStatus
from wxcrm.notifications.subscriptions import NO_OPENID
from wxcrm.users.models import Role, User


async def history(session: AsyncSession, customer_id: str) -> list[AssignmentHistory]:
    rows = await session.scalars(
        select(AssignmentHistory)
        .where(AssignmentHistory.customer_id == customer_id)
        .order_by(AssignmentHistory.created_at)
    )
    return list(rows)


async def owner_of(session: AsyncSession, customer_id: str) -> Customer:
    customer = await session.get(Customer, customer_id, populate_existing=True)
    assert customer is not None
    return customer


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return body


# -- the list -------------------------------------------------------------------------------


async def test_the_pool_lists_unowned_customers_newest_first_without_frozen_for_advisors(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    manager = await add_user(session, Role.manager)
    advisor = await add_user(session, Role.advisor)
    now = utcnow()
    tag = {"search": f"池{random.randrange(10**6)}"}  # these customers only
    old = await add_customer(
        session, name=f"{tag['search']}老", pool_entered_at=now - timedelta(days=3)
    )
    new = await add_customer(
        session, name=f"{tag['search']}新", pool_entered_at=now - timedelta(hours=1)
    )
    frozen = await add_customer(session, name=f"{tag['search']}冻结", is_frozen=True)
    await add_customer(session, advisor, name=f"{tag['search']}有主")

    advisor_view = _ok(
        await client.get("/api/customers/public-pool", params=tag, headers=staff_headers(advisor))
    )
    assert advisor_view["message"] == "获取公海客户成功"
    assert [c["_id"] for c in advisor_view["data"]["items"]] == [new.id, old.id]
    assert advisor_view["data"]["total"] == 2
    assert all(c["inPublicPool"] for c in advisor_view["data"]["items"])

    manager_headers = staff_headers(manager)
    manager_view = _ok(
        await client.get("/api/customers/public-pool", params=tag, headers=manager_headers)
    )
    assert [c["_id"] for c in manager_view["data"]["items"]] == [frozen.id, new.id, old.id]

    paged = _ok(
        await client.get(
            "/api/customers/public-pool",
            params=tag | {"page": "2", "limit": "2"},
            headers=manager_headers,
        )
    )
    assert [c["_id"] for c in paged["data"]["items"]] == [old.id]
    assert paged["data"]["totalPages"] == 2


async def test_the_pool_filters_like_the_customers_list(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await add_user(session, Role.advisor)
    headers = staff_headers(advisor)
    nanny = await add_customer(
        session, name="李月嫂", lead_source="美团", service_category="月嫂", lead_level="A类"
    )
    cleaner = await add_customer(
        session, name="王保洁", lead_source="抖音", service_category="保洁", lead_level="B类"
    )

    async def ids(**params: str) -> list[str]:
        body = _ok(await client.get("/api/customers/public-pool", params=params, headers=headers))
        return [c["_id"] for c in body["data"]["items"]]

    assert await ids(leadSource="美团") == [nanny.id]
    assert await ids(serviceCategory="保洁") == [cleaner.id]
    assert await ids(leadLevel="A类") == [nanny.id]
    assert await ids(search="王") == [cleaner.id]
    assert await ids(search=nanny.phone) == [nanny.id]
    assert await ids(search=cleaner.customer_no) == [cleaner.id]
    assert await ids(leadSource="美团", serviceCategory="保洁") == []


async def test_the_pool_needs_a_login(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/customers/public-pool"), 401, "UNAUTHORIZED")


# -- claims ---------------------------------------------------------------------------------


async def test_an_advisor_claims_customers_with_a_history_row_each(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await add_user(session, Role.advisor)
    first = await add_customer(session, pool_entry_reason="客户不需要了")
    second = await add_customer(session, claim_count=2)
    response = await client.post(
        "/api/customers/public-pool/claim",
        json={"customerIds": [first.id, second.id, first.id]},
        headers=staff_headers(advisor),
    )
    body = _ok(response)
    assert body["message"] == "领取完成：成功 2 个，失败 0 个"
    assert body["data"] == {"success": 2, "failed": 0, "errors": []}
    for customer in (first, second):
        claimed = await owner_of(session, customer.id)
        assert claimed.owner_id == advisor.id
        assert claimed.assigned_by_id == advisor.id
        assert claimed.pool_entered_at is None and claimed.assigned_at is not None
        assert claimed.pool_entry_reason is None  # it is in the pool no longer
        [row] = await history(session, customer.id)
        assert (row.from_user_id, row.to_user_id, row.by_user_id) == (None, advisor.id, advisor.id)
        assert row.channel == "claim"
    assert [(await owner_of(session, c.id)).claim_count for c in (first, second)] == [1, 3]

    listed = _ok(
        await client.get("/api/customers", headers=staff_headers(advisor))
    )  # now the advisor's own
    assert {c["_id"] for c in listed["data"]["items"]} == {first.id, second.id}


async def test_a_claim_reports_each_refused_customer(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await add_user(session, Role.advisor)
    other = await add_user(session, Role.advisor)
    owned = await add_customer(session, other)
    frozen = await add_customer(session, is_frozen=True)
    free = await add_customer(session)
    unknown = new_id()
    body = _ok(
        await client.post(
            "/api/customers/public-pool/claim",
            json={"customerIds": [unknown, owned.id, frozen.id, free.id]},
            headers=staff_headers(advisor),
        )
    )
    assert body["message"] == "领取完成：成功 1 个，失败 3 个"
    assert body["data"]["errors"] == [
        {"customerId": unknown, "error": "客户不存在"},
        {"customerId": owned.id, "error": "客户不在公海中"},
        {"customerId": frozen.id, "error": "客户已冻结"},
    ]
    assert (await owner_of(session, owned.id)).owner_id == other.id
    assert (await owner_of(session, frozen.id)).owner_id is None
    assert await history(session, owned.id) == []


@pytest.mark.parametrize(
    ("ids", "field"),
    [([], "customerIds"), (["not-an-id"], "customerIds.0"), (None, "customerIds")],
)
async def test_a_claim_needs_one_to_a_hundred_ids(
    client: httpx.AsyncClient, session: AsyncSession, ids: list[str] | None, field: str
) -> None:
    advisor = await add_user(session, Role.advisor)
    body = {} if ids is None else {"customerIds": ids}
    error = assert_error(
        await client.post(
            "/api/customers/public-pool/claim", json=body, headers=staff_headers(advisor)
        ),
        400,
        "VALIDATION_ERROR",
    )
    assert error["error"]["details"][0]["field"] == field


async def test_a_claim_of_more_than_a_hundred_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await add_user(session, Role.advisor)
    assert_error(
        await client.post(
            "/api/customers/public-pool/claim",
            json={"customerIds": [new_id() for _ in range(101)]},
            headers=staff_headers(advisor),
        ),
        400,
        "VALIDATION_ERROR",
    )


async def test_the_daily_claim_limit_counts_todays_claims_only(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    app.state.settings = settings.model_copy(update={"pool_daily_claim_limit": 2})
    advisor = await add_user(session, Role.advisor)
    earlier = [await add_customer(session, advisor) for _ in range(2)]
    now = utcnow()
    # One claim today (counts) and one last night before midnight in China (does not).
    for customer, at in ((earlier[0], now), (earlier[1], day_start(now) - timedelta(minutes=1))):
        session.add(
            AssignmentHistory(
                customer_id=customer.id,
                to_user_id=advisor.id,
                by_user_id=advisor.id,
                channel="claim",
                created_at=at,
            )
        )
    free = [await add_customer(session) for _ in range(2)]
    headers = staff_headers(advisor)
    body = _ok(
        await client.post(
            "/api/customers/public-pool/claim",
            json={"customerIds": [c.id for c in free]},
            headers=headers,
        )
    )
    assert body["data"]["success"] == 1
    assert body["data"]["errors"] == [{"customerId": free[1].id, "error": "超过每日领取上限"}]
    again = _ok(
        await client.post(
            "/api/customers/public-pool/claim", json={"customerIds": [free[1].id]}, headers=headers
        )
    )
    assert again["data"]["errors"][0]["error"] == "超过每日领取上限"


async def test_the_holding_cap_counts_every_customer_held(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    app.state.settings = settings.model_copy(update={"pool_holding_cap": 2})
    advisor = await add_user(session, Role.advisor)
    await add_customer(session, advisor)  # assigned, not claimed: held all the same
    free = [await add_customer(session) for _ in range(3)]
    body = _ok(
        await client.post(
            "/api/customers/public-pool/claim",
            json={"customerIds": [c.id for c in free]},
            headers=staff_headers(advisor),
        )
    )
    assert body["message"] == "领取完成：成功 1 个，失败 2 个"
    assert [e["error"] for e in body["data"]["errors"]] == ["超过持有客户上限"] * 2
    assert (await owner_of(session, free[0].id)).owner_id == advisor.id


async def test_managers_claim_without_advisors_limits(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    app.state.settings = settings.model_copy(
        update={"pool_holding_cap": 0, "pool_daily_claim_limit": 0}
    )
    manager = await add_user(session, Role.manager)
    released_by_them = await add_customer(session, previous_owner_id=manager.id)
    body = _ok(
        await client.post(
            "/api/customers/public-pool/claim",
            json={"customerIds": [released_by_them.id]},
            headers=staff_headers(manager),
        )
    )
    assert body["data"]["success"] == 1


# -- releases -------------------------------------------------------------------------------


async def test_an_advisor_releases_its_customer_with_a_reason(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await add_user(session, Role.advisor)
    customer = await add_customer(session, advisor)
    before = utcnow()
    body = _ok(
        await client.post(
            f"/api/customers/{customer.id}/release-to-pool",
            json={"reason": "  客户暂无需求 "},
            headers=staff_headers(advisor),
        )
    )
    assert body["message"] == "释放成功"
    assert body["data"]["_id"] == customer.id
    assert body["data"]["inPublicPool"] is True and body["data"]["assignedTo"] is None
    assert body["data"]["publicPoolEntryReason"] == "客户暂无需求"
    released = await owner_of(session, customer.id)
    assert released.owner_id is None and released.previous_owner_id == advisor.id
    assert released.pool_entered_at is not None and released.pool_entered_at >= before
    assert released.pool_entry_reason == "客户暂无需求"
    # A release is no transfer (流转): only the system taking a customer back is one.
    assert (released.transfer_count, released.last_transferred_at) == (0, None)
    [row] = await history(session, customer.id)
    assert (row.from_user_id, row.to_user_id, row.by_user_id) == (advisor.id, None, advisor.id)
    assert (row.channel, row.reason) == ("release", "客户暂无需求")


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "长" * 201}])
async def test_a_release_needs_a_reason(
    client: httpx.AsyncClient, session: AsyncSession, body: dict[str, str]
) -> None:
    advisor = await add_user(session, Role.advisor)
    customer = await add_customer(session, advisor)
    headers = staff_headers(advisor)
    for path, payload in (
        (f"/api/customers/{customer.id}/release-to-pool", body),
        ("/api/customers/batch-release-to-pool", body | {"customerIds": [customer.id]}),
    ):
        error = assert_error(
            await client.post(path, json=payload, headers=headers), 400, "VALIDATION_ERROR"
        )
        assert error["error"]["details"][0]["field"] == "reason"
    assert (await owner_of(session, customer.id)).owner_id == advisor.id


async def test_advisors_release_neither_anothers_nor_signed_nor_frozen_customers(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await add_user(session, Role.advisor)
    other = await add_user(session, Role.advisor)
    anothers = await add_customer(session, other)
    signed = await add_customer(session, advisor, contract_status="已签约")
    frozen = await add_customer(session, advisor, is_frozen=True)
    in_pool = await add_customer(session)
    headers = staff_headers(advisor)

    async def release(customer: Customer) -> httpx.Response:
        return await client.post(
            f"/api/customers/{customer.id}/release-to-pool",
            json={"reason": "不想跟了"},
            headers=headers,
        )

    assert assert_error(await release(anothers), 404, "NOT_FOUND")["message"] == "客户不存在"
    assert assert_error(await release(in_pool), 404, "NOT_FOUND")["message"] == "客户不存在"
    signed_error = assert_error(await release(signed), 409, "CONFLICT")
    assert signed_error["message"] == "已签约客户不能释放到公海"
    assert assert_error(await release(frozen), 409, "CONFLICT")["message"] == "客户已冻结"
    for customer, owner in ((anothers, other), (signed, advisor), (frozen, advisor)):
        assert (await owner_of(session, customer.id)).owner_id == owner.id
        assert await history(session, customer.id) == []


async def test_managers_release_any_customer_but_not_one_already_in_the_pool(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    manager = await add_user(session, Role.manager)
    advisor = await add_user(session, Role.advisor)
    signed = await add_customer(session, advisor, contract_status="已签约", is_frozen=True)
    in_pool = await add_customer(session)
    headers = staff_headers(manager)
    body = _ok(
        await client.post(
            f"/api/customers/{signed.id}/release-to-pool",
            json={"reason": "顾问离职"},
            headers=headers,
        )
    )
    assert body["data"]["inPublicPool"] is True
    [row] = await history(session, signed.id)
    assert (row.from_user_id, row.by_user_id) == (advisor.id, manager.id)
    error = assert_error(
        await client.post(
            f"/api/customers/{in_pool.id}/release-to-pool",
            json={"reason": "顾问离职"},
            headers=headers,
        ),
        409,
        "CONFLICT",
    )
    assert error["message"] == "客户已在公海中"
    assert_error(
        await client.post(
            f"/api/customers/{new_id()}/release-to-pool", json={"reason": "x"}, headers=headers
        ),
        404,
        "NOT_FOUND",
    )


async def test_may_release_is_the_rule_release_applies(
    session: AsyncSession, settings: Settings
) -> None:
    """The console offers 释放 by may_release: it must agree with what release does."""
    manager = await add_user(session, Role.manager)
    advisor = await add_user(session, Role.advisor)
    other = await add_user(session, Role.advisor)
    customers = [
        await add_customer(session, advisor),
        await add_customer(session, other),
        await add_customer(session, advisor, contract_status="已签约"),
        await add_customer(session, advisor, is_frozen=True),
        await add_customer(session),
    ]
    for user, expected in (
        (advisor, [True, False, False, False, False]),
        (manager, [True, True, True, True, False]),
    ):
        offered = [pool_service.may_release(user, c, settings) for c in customers]
        assert offered == expected
        async with session.begin_nested() as savepoint:
            result = await pool_service.release(
                session, settings, user, [c.id for c in customers], "x"
            )
            await savepoint.rollback()
        assert [c.id in result.done for c in customers] == expected


async def test_a_batch_release_reports_each_refused_customer(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    advisor = await add_user(session, Role.advisor)
    other = await add_user(session, Role.advisor)
    mine = [await add_customer(session, advisor) for _ in range(2)]
    anothers = await add_customer(session, other)
    signed = await add_customer(session, advisor, contract_status="已签约")
    frozen = await add_customer(session, advisor, is_frozen=True)
    ids = [mine[0].id, anothers.id, signed.id, frozen.id, mine[1].id]
    body = _ok(
        await client.post(
            "/api/customers/batch-release-to-pool",
            json={"customerIds": ids, "reason": "批量清理"},
            headers=staff_headers(advisor),
        )
    )
    assert body["message"] == "批量释放完成：成功 2 个，失败 3 个"
    assert body["data"] == {
        "success": 2,
        "failed": 3,
        "errors": [
            {"customerId": anothers.id, "error": "客户不存在"},
            {"customerId": signed.id, "error": "已签约客户不能释放到公海"},
            {"customerId": frozen.id, "error": "客户已冻结"},
        ],
    }
    for customer in mine:
        assert (await owner_of(session, customer.id)).owner_id is None
        [row] = await history(session, customer.id)
        assert (row.channel, row.reason, row.from_user_id) == ("release", "批量清理", advisor.id)
    assert (await owner_of(session, anothers.id)).owner_id == other.id


async def test_the_cooling_period_keeps_a_customer_from_its_last_owner(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    advisor = await add_user(session, Role.advisor)
    colleague = await add_user(session, Role.advisor)
    customer = await add_customer(session, advisor)
    headers = staff_headers(advisor)
    _ok(
        await client.post(
            f"/api/customers/{customer.id}/release-to-pool",
            json={"reason": "暂不跟进"},
            headers=headers,
        )
    )
    body = _ok(
        await client.post(
            "/api/customers/public-pool/claim", json={"customerIds": [customer.id]}, headers=headers
        )
    )
    assert body["data"]["errors"] == [{"customerId": customer.id, "error": "冷却期内不能领取"}]

    # Released long enough ago (here: a shorter cooling period), the last owner may claim it.
    app.state.settings = settings.model_copy(update={"pool_cooling_days": 0})
    assert (
        _ok(
            await client.post(
                "/api/customers/public-pool/claim",
                json={"customerIds": [customer.id]},
                headers=headers,
            )
        )["data"]["success"]
        == 1
    )

    # Another advisor is never held back by someone else's cooling period.
    app.state.settings = settings
    cooled = await add_customer(
        session, previous_owner_id=advisor.id, pool_entered_at=utcnow() - timedelta(days=1)
    )
    assert (
        _ok(
            await client.post(
                "/api/customers/public-pool/claim",
                json={"customerIds": [cooled.id]},
                headers=staff_headers(colleague),
            )
        )["data"]["success"]
        == 1
    )
    aged = await add_customer(
        session,
        previous_owner_id=advisor.id,
        pool_entered_at=utcnow() - timedelta(days=settings.pool_cooling_days, minutes=1),
    )
    assert (
        _ok(
            await client.post(
                "/api/customers/public-pool/claim", json={"customerIds": [aged.id]}, headers=headers
            )
        )["data"]["success"]
        == 1
    )


# -- committed data: concurrent claims and the recycle job ----------------------------------


@dataclass
class Committed:
    """Rows written in transactions of their own, as workers and concurrent requests see them
    (the `committed` fixture empties the database afterwards)."""

    database: Database
    users: list[str] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)

    async def user(self, *, openid: bool = True, credits: int = 0) -> User:
        user = await committed_advisor(self.database, credits=credits, bound=openid)
        self.users.append(user.id)
        return user

    async def customer(self, owner: User | None = None, **fields: Any) -> Customer:
        async with self.database.writer() as session:
            customer = await make_customer(session, owner, **fields)
            await session.commit()
        self.customers.append(customer.id)
        return customer

    async def get(self, customer_id: str) -> Customer:
        async with self.database.reader() as session:
            customer = await session.get(Customer, customer_id)
            assert customer is not None
            return customer

    async def history(self) -> list[AssignmentHistory]:
        async with self.database.reader() as session:
            rows = await session.scalars(
                select(AssignmentHistory).where(AssignmentHistory.customer_id.in_(self.customers))
            )
            return list(rows)

    async def warnings(self) -> list[Notification]:
        async with self.database.reader() as session:
            rows = await session.scalars(
                select(Notification)
                .where(Notification.advisor_id.in_(self.users))
                .order_by(Notification.created_at)
            )
            return list(rows)


@pytest.fixture
def pool_rows(committed: Database) -> Committed:
    return Committed(committed)


async def test_concurrent_claims_of_one_customer_have_one_winner(
    pool_rows: Committed, live_client: httpx.AsyncClient
) -> None:
    advisors = [await pool_rows.user() for _ in range(4)]
    customer = await pool_rows.customer()
    responses = await asyncio.gather(
        *(
            live_client.post(
                "/api/customers/public-pool/claim",
                json={"customerIds": [customer.id]},
                headers=staff_headers(advisor),
            )
            for advisor in advisors
        )
    )
    bodies = [_ok(response)["data"] for response in responses]
    assert sorted(body["success"] for body in bodies) == [0, 0, 0, 1]
    assert all(
        body["errors"] == [{"customerId": customer.id, "error": "客户不在公海中"}]
        for body in bodies
        if not body["success"]
    )
    winner = advisors[[body["success"] for body in bodies].index(1)]
    assert (await pool_rows.get(customer.id)).owner_id == winner.id
    [row] = await pool_rows.history()
    assert (row.channel, row.to_user_id) == ("claim", winner.id)


def test_workers_run_the_recycle_job() -> None:
    [job] = [job for job in scheduled_jobs() if job.name == "recycle_to_pool"]
    assert job.run is recycle_to_pool
    assert job.every_seconds > 0


async def test_the_recycle_job_recycles_the_stale_and_warns_once_a_day(
    pool_rows: Committed, settings: Settings
) -> None:
    assert (settings.pool_recycle_after_days, settings.pool_recycle_warning_days) == (15, 3)
    now = utcnow()

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    advisor = await pool_rows.user(credits=5)
    unbound = await pool_rows.user(openid=False)
    never_followed = await pool_rows.customer(advisor, assigned_at=ago(20))
    followed_long_ago = await pool_rows.customer(
        advisor, assigned_at=ago(40), last_follow_up_at=ago(16)
    )
    spared = [
        await pool_rows.customer(advisor, assigned_at=ago(40), last_follow_up_at=ago(2)),
        await pool_rows.customer(advisor, assigned_at=ago(40), contract_status="已签约"),
        await pool_rows.customer(advisor, assigned_at=ago(40), is_frozen=True),
        # Just handed over: its previous owner's silence does not count against the new one.
        await pool_rows.customer(advisor, assigned_at=ago(1), last_follow_up_at=ago(30)),
        await pool_rows.customer(advisor, assigned_at=ago(5)),
    ]
    due_soon = await pool_rows.customer(
        advisor, name="赵女士", assigned_at=ago(40), last_follow_up_at=ago(13)
    )
    unbound_due_soon = await pool_rows.customer(unbound, assigned_at=ago(13.5))
    in_pool = await pool_rows.customer(pool_entered_at=ago(60))

    result = await recycle_to_pool(pool_rows.database, settings, now)
    assert result == RecycleResult(recycled=2, warned=2)
    for customer in (never_followed, followed_long_ago):
        recycled = await pool_rows.get(customer.id)
        assert recycled.owner_id is None and recycled.previous_owner_id == advisor.id
        assert recycled.pool_entered_at == now
        assert recycled.pool_entry_reason == "超过15天未跟进，自动回收"
        assert (recycled.transfer_count, recycled.last_transferred_at) == (1, now)
    for customer in [*spared, due_soon]:
        kept = await pool_rows.get(customer.id)
        assert kept.owner_id == advisor.id and kept.transfer_count == 0
    assert (await pool_rows.get(in_pool.id)).pool_entered_at == ago(60)
    rows = await pool_rows.history()
    assert {row.customer_id for row in rows} == {never_followed.id, followed_long_ago.id}
    assert {
        (row.channel, row.from_user_id, row.to_user_id, row.by_user_id, row.reason) for row in rows
    } == {("auto_recycle", advisor.id, None, None, "超过15天未跟进，自动回收")}

    warning, unbound_warning = sorted(
        await pool_rows.warnings(), key=lambda n: n.advisor_id != advisor.id
    )
    assert warning.event == "pool_recycle_warning" and warning.channel == "direct"
    assert warning.status == NotificationStatus.pending.value
    assert warning.template_id == ACTION_TEMPLATE
    assert warning.payload == {
        "template": "customer_action",
        "values": {
            "title": "客户即将回收到公海",
            "time": (ago(13) + timedelta(days=15)).isoformat(),
            "phone": due_soon.phone,
            "customer_name": "赵女士",
        },
        "page": f"pages/customer/detail?id={due_soon.id}",
    }
    assert warning.fold_key == pool_service.warning_key(due_soon.id, now)
    assert unbound_warning.advisor_id == unbound.id
    assert unbound_warning.status == NotificationStatus.skipped.value
    assert unbound_warning.skip_reason == NO_OPENID
    assert unbound_warning.fold_key == pool_service.warning_key(unbound_due_soon.id, now)

    # Again the same day, even with the first warning already sent: nothing more.
    async with pool_rows.database.writer() as session:
        sent = await session.get(Notification, warning.id)
        assert sent is not None
        sent.status = NotificationStatus.sent.value
        await session.commit()
    assert await recycle_to_pool(pool_rows.database, settings, now) == RecycleResult()
    assert len(await pool_rows.warnings()) == 2 and len(await pool_rows.history()) == 2

    # The next day: one more warning each, nothing recycled yet.
    next_day = now + timedelta(days=1)
    assert await recycle_to_pool(pool_rows.database, settings, next_day) == RecycleResult(
        recycled=0, warned=2
    )
    # Past their recycling moments: back to the pool, and the last owner must cool off.
    later = ago(13) + timedelta(days=15, seconds=1)
    assert await recycle_to_pool(pool_rows.database, settings, later) == RecycleResult(
        recycled=2, warned=0
    )
    async with pool_rows.database.writer() as session:
        claimed = await pool_service.claim(session, settings, advisor, [due_soon.id], now=later)
        assert claimed.failed == [Failure(due_soon.id, Refusal.COOLING, "冷却期内不能领取")]


async def test_recycle_jobs_running_at_once_move_and_warn_each_customer_once(
    pool_rows: Committed, settings: Settings
) -> None:
    now = utcnow()
    advisor = await pool_rows.user(credits=1)
    stale = [
        await pool_rows.customer(advisor, assigned_at=now - timedelta(days=20)) for _ in range(3)
    ]
    due_soon = [
        await pool_rows.customer(advisor, assigned_at=now - timedelta(days=14)) for _ in range(2)
    ]
    results = await asyncio.gather(
        *(recycle_to_pool(pool_rows.database, settings, now) for _ in range(3))
    )
    assert sum(r.recycled for r in results) == len(stale)
    assert sum(r.warned for r in results) == len(due_soon)
    assert len(await pool_rows.history()) == len(stale)
    warnings = await pool_rows.warnings()
    assert sorted(n.fold_key or "" for n in warnings) == sorted(
        pool_service.warning_key(c.id, now) for c in due_soon
    )
