"""Fixtures for the outbox: committed rows (workers use their own sessions), an advisor
with a bound openid and credits, settings and a WeChat client pointed at the simulator."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE
from wxcrm.core.db import Database
from wxcrm.core.security import hash_password
from wxcrm.core.settings import Settings
from wxcrm.notifications.models import AdvisorSubscription, Notification, NotificationAttempt
from wxcrm.notifications.outbox import Channel, Queued, queue_notification
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.users.models import Role, User
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.models import WeChatToken
from wxcrm.wechat.sim import SimControl

LONG_TERM_TEMPLATE = "tmpl-long-term"
_serial = itertools.count(1)


@pytest.fixture
def outbox_settings(settings: Settings, sim_url: str) -> Settings:
    return settings.model_copy(
        update={
            "outbox_retry_base_seconds": 0.05,
            "outbox_retry_max_seconds": 0.2,
            "worker_poll_seconds": 0.05,
            "worker_heartbeat_seconds": 0.2,
            "worker_stale_seconds": 1.0,
        }
    )


@pytest.fixture
async def committed(database: Database) -> AsyncIterator[Database]:
    """The database, for tests whose rows must be committed; emptied of them afterwards.

    The stored access token goes too: the simulator was reset and no longer knows it.
    """
    async with database.writer() as session:
        await session.execute(delete(WeChatToken))
        await session.commit()
    yield database
    async with database.writer() as session:
        await session.execute(delete(NotificationAttempt))
        await session.execute(delete(Notification))
        await session.execute(delete(AdvisorSubscription))
        await session.execute(delete(User).where(User.username.like("outbox-%")))
        await session.commit()


@dataclass
class Advisor:
    id: str
    openid: str | None


async def make_advisor(
    database: Database,
    *,
    credits: int = 0,
    template_id: str = ACTION_TEMPLATE,
    bound: bool = True,
) -> Advisor:
    n = next(_serial)
    openid = f"o-advisor-{n}" if bound else None
    async with database.writer() as session:
        user = User(
            username=f"outbox-advisor-{n}",
            password_hash=hash_password("unused-password"),
            name=f"顾问{n}",
            role=Role.advisor.value,
            openid=openid,
        )
        session.add(user)
        await session.flush()
        if credits:
            session.add(
                AdvisorSubscription(
                    advisor_id=user.id,
                    template_id=template_id,
                    openid=openid,
                    subscribed=True,
                    credits=credits,
                )
            )
        await session.commit()
        return Advisor(user.id, openid)


def action_payload(n: int | str = 1, *, customer_name: str = "张三") -> dict[str, Any]:
    return {
        "template": "customer_action",
        "values": {
            "title": "新客户查看了您的简历",
            "time": "2024-01-01T12:00:00+08:00",
            "phone": "13800138000",
            "customer_name": customer_name,
        },
        "page": f"pages/customer/detail?id={n}",
    }


async def queue_action(
    session: AsyncSession, advisor: Advisor, n: int | str = 1, **kwargs: Any
) -> Queued:
    return await queue_notification(
        session,
        event="customer_action",
        channel=Channel.direct,
        advisor_id=advisor.id,
        payload=action_payload(n),
        **kwargs,
    )


async def queue_committed(database: Database, advisor: Advisor, count: int) -> None:
    async with database.writer() as session:
        for n in range(count):
            await queue_action(session, advisor, n)
        await session.commit()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as client:
        yield client


@pytest.fixture
def wechat(http: httpx.AsyncClient, committed: Database, outbox_settings: Settings) -> WeChatClient:
    return WeChatClient.from_settings(http, committed, outbox_settings)


@pytest.fixture
def worker(committed: Database, wechat: WeChatClient, outbox_settings: Settings) -> DeliveryWorker:
    return DeliveryWorker(committed, wechat, outbox_settings)


async def grant_at_wechat(sim_control: SimControl, advisor: Advisor, count: int) -> None:
    assert advisor.openid
    await sim_control.grant(advisor.openid, ACTION_TEMPLATE, count)
