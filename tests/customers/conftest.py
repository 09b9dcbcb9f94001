"""Fixtures for the customers API: staff of every role with their tokens, and a real
delivery worker behind the committed app (tests/conftest.py's `committed_app`)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ASSIGN_TEMPLATE
from tests.factories import add_user, staff_headers
from wxcrm.core.db import Database
from wxcrm.core.settings import Settings
from wxcrm.notifications.models import Notification
from wxcrm.notifications.subscriptions import grant_credits
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.users.models import Role, User

_serial = itertools.count(1)


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
def committed_settings(fast_settings: Settings) -> Settings:
    """The committed app's requests are followed by a real worker here: quick retries."""
    return fast_settings


async def give_credits(session: AsyncSession, advisor: User, credits: int = 5) -> None:
    """`credits` sends of the assignment template in our ledger (WeChat's side is separate),
    committed."""
    await grant_credits(
        session,
        advisor_id=advisor.id,
        openid=advisor.openid,
        template_id=ASSIGN_TEMPLATE,
        credits=credits,
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
