"""Fixtures for the customers API: staff of every role with their tokens, customers made
straight in the database, one app for all the tests, and an app whose requests commit
(for the delivery worker)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ASSIGN_TEMPLATE, TEST_SECRET_KEY
from tests.factories import DEFAULT_PASSWORD
from wxcrm.app import create_app
from wxcrm.core.db import Database
from wxcrm.core.models import utcnow
from wxcrm.core.security import create_token, hash_password
from wxcrm.core.settings import Settings
from wxcrm.customers.leads import new_customer_number
from wxcrm.customers.models import AssignmentHistory, Customer, CustomerAction, FollowUp
from wxcrm.notifications.models import AdvisorSubscription, Notification, NotificationAttempt
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.users.models import Role, User
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.models import WeChatToken

USERNAME_PREFIX = "cust-"
_serial = itertools.count(1)
_phones = itertools.count(13_900_000_000)
_Row = TypeVar("_Row", User, Customer)


# -- staff and customers ------------------------------------------------------------------------


@cache
def _password_hash() -> str:
    return hash_password(DEFAULT_PASSWORD)  # argon2 is slow on purpose: hash once


def staff_headers(user: User) -> dict[str, str]:
    """A staff token for `user`, as POST /api/auth/login issues (without the argon2 cost)."""
    token = create_token(TEST_SECRET_KEY, user.id, "staff", timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


def new_phone() -> str:
    return str(next(_phones))


async def _keep(session: AsyncSession, row: _Row) -> _Row:
    """Commit `row` and detach it. A request that fails rolls the session back, which
    would expire every object still attached, and reading one would then need I/O."""
    session.add(row)
    await session.commit()
    session.expunge(row)
    return row


async def add_user(
    session: AsyncSession,
    role: Role = Role.advisor,
    *,
    name: str | None = None,
    openid: str | None = None,
    active: bool = True,
) -> User:
    """A staff member, committed (in the `session` fixture: kept until the test ends)."""
    n = next(_serial)
    user = User(
        username=f"{USERNAME_PREFIX}{role.value}-{n}",
        password_hash=_password_hash(),
        name=name or f"{role.value}{n}",
        role=role.value,
        openid=openid,
        is_active=active,
    )
    return await _keep(session, user)


async def add_customer(
    session: AsyncSession,
    owner: User | None = None,
    *,
    name: str | None = None,
    phone: str | None = None,
    **columns: Any,
) -> Customer:
    """A customer of `owner` (None: in the public pool), committed as `add_user`'s."""
    now = utcnow()
    customer = Customer(
        customer_no=new_customer_number(),
        name=name or f"客户{next(_serial)}",
        phone=phone or new_phone(),
        owner_id=owner.id if owner else None,
        assigned_at=now if owner else None,
        pool_entered_at=None if owner else now,
        **columns,
    )
    return await _keep(session, customer)


async def count(session: AsyncSession, model: type[Any], *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@dataclass
class Team:
    admin: User
    manager: User
    advisor: User
    other: User  # a second advisor, who must not see the first one's customers

    def member(self, role: str) -> User:
        user: User = getattr(self, role)
        return user

    def headers(self, role: str) -> dict[str, str]:
        return staff_headers(self.member(role))


async def make_team(session: AsyncSession, *, advisor_openids: bool = False) -> Team:
    n = next(_serial)
    return Team(
        admin=await add_user(session, Role.admin, name="李管理"),
        manager=await add_user(session, Role.manager, name="王经理"),
        advisor=await add_user(
            session, name="张顾问", openid=f"o-cust-{n}-a" if advisor_openids else None
        ),
        other=await add_user(
            session, name="赵顾问", openid=f"o-cust-{n}-b" if advisor_openids else None
        ),
    )


@pytest.fixture
async def team(session: AsyncSession) -> Team:
    return await make_team(session)


# -- committed requests, a real delivery worker and the simulator ------------------------------


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """Retries within tenths of a second (as tests/notifications' `outbox_settings`)."""
    return settings.model_copy(
        update={
            "outbox_retry_base_seconds": 0.02,
            "outbox_retry_max_seconds": 0.1,
            "worker_poll_seconds": 0.05,
            "worker_heartbeat_seconds": 0.2,
            "worker_stale_seconds": 1.0,
        }
    )


@pytest.fixture(scope="session")
def _shared_committed_app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database, run_migrations=False)


@pytest.fixture
async def committed_app(
    _shared_committed_app: FastAPI,
    fast_settings: Settings,
    database: Database,
    wechat_http: httpx.AsyncClient,
) -> AsyncIterator[FastAPI]:
    """The app with real transactions: each request commits. Emptied afterwards.

    The stored access token goes first: the simulator was reset and no longer knows it.
    """
    async with database.writer() as session:
        await session.execute(delete(WeChatToken))
        await session.commit()
    app = _shared_committed_app
    app.state.settings = fast_settings
    app.state.wechat = WeChatClient.from_settings(wechat_http, database, fast_settings)
    yield app
    async with database.writer() as session:
        for model in (
            NotificationAttempt,
            Notification,
            AssignmentHistory,
            FollowUp,
            CustomerAction,
            Customer,
            AdvisorSubscription,
        ):
            await session.execute(delete(model))
        await session.execute(delete(User).where(User.username.like(f"{USERNAME_PREFIX}%")))
        await session.commit()


@pytest.fixture
async def live_client(committed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=committed_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def subscribe(database: Database, advisor: User, credits: int) -> None:
    """`credits` sends of the assignment template in our ledger (WeChat's side is separate)."""
    async with database.writer() as session:
        session.add(
            AdvisorSubscription(
                advisor_id=advisor.id,
                template_id=ASSIGN_TEMPLATE,
                openid=advisor.openid,
                subscribed=True,
                credits=credits,
            )
        )
        await session.commit()


def worker_for(app: FastAPI, database: Database) -> DeliveryWorker:
    """A delivery worker with the app's current settings (and so its channel)."""
    settings: Settings = app.state.settings
    return DeliveryWorker(database, app.state.wechat, settings)


async def deliver_until_settled(worker: DeliveryWorker, database: Database) -> list[Notification]:
    """Run the worker until no notification is pending (10 s at most); returns them all."""
    rows: list[Notification] = []
    try:
        async with asyncio.timeout(10):
            while True:
                await worker.run_until_idle()
                async with database.reader() as session:
                    rows = list((await session.scalars(select(Notification))).all())
                if all(row.status not in ("pending", "sending") for row in rows):
                    return rows
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError([(row.status, row.last_errcode) for row in rows]) from None
