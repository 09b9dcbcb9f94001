"""Fixtures for the outbox: queued notifications, settings, and a worker and WeChat client
pointed at the simulator. Committed rows and advisors with credits are shared
(tests/conftest.py's `committed`, tests/factories.py's `committed_advisor`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE
from wxcrm.core.db import Database
from wxcrm.core.settings import Settings
from wxcrm.notifications.outbox import Channel, Queued, queue_notification
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.users.models import User
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.sim import SimControl

LONG_TERM_TEMPLATE = "tmpl-long-term"


@pytest.fixture
def outbox_settings(fast_settings: Settings) -> Settings:
    """`fast_settings`, with the retry delays these tests were written against."""
    return fast_settings.model_copy(
        update={"outbox_retry_base_seconds": 0.05, "outbox_retry_max_seconds": 0.2}
    )


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
    session: AsyncSession, advisor: User, n: int | str = 1, **kwargs: Any
) -> Queued:
    return await queue_notification(
        session,
        event="customer_action",
        channel=Channel.direct,
        advisor_id=advisor.id,
        payload=action_payload(n),
        **kwargs,
    )


async def queue_committed(database: Database, advisor: User, count: int) -> None:
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


async def grant_at_wechat(sim_control: SimControl, advisor: User, count: int) -> None:
    assert advisor.openid
    await sim_control.grant(advisor.openid, ACTION_TEMPLATE, count)
