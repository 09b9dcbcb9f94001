"""Fixtures for the mini-program API: session tokens, and an app whose requests commit
(for what a worker or another request must see)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from tests.conftest import ACTION_TEMPLATE, TEST_SECRET_KEY
from wxcrm.app import create_app
from wxcrm.core.db import Database
from wxcrm.core.security import create_token, hash_password
from wxcrm.core.settings import Settings
from wxcrm.customers.models import Customer, CustomerAction
from wxcrm.miniprogram.models import MiniProgramUser
from wxcrm.notifications.models import AdvisorSubscription, Notification, NotificationAttempt
from wxcrm.users.models import Role, User
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.models import WeChatToken

_serial = itertools.count(1)


def mp_headers(openid: str) -> dict[str, str]:
    """A mini-program session token for `openid`, as /api/wechat/openid issues."""
    token = create_token(TEST_SECRET_KEY, openid, "miniprogram", timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


def action_body(openid: str, advisor_id: str, **overrides: object) -> dict[str, object]:
    """Seed 000's request example, for this customer and advisor."""
    body: dict[str, object] = {
        "customerId": openid,
        "advisorId": advisor_id,
        "actionType": "view_resume",
        "actionData": {"resumeId": "简历ID", "timestamp": "2024-01-01T12:00:00.000Z"},
        "customerName": "张三",
        "customerPhone": "13800138000",
    }
    body.update(overrides)
    return body


@pytest.fixture
async def committed_app(
    settings: Settings, database: Database, wechat_http: httpx.AsyncClient
) -> AsyncIterator[FastAPI]:
    """The app with real transactions: each request commits. Emptied afterwards."""
    async with database.writer() as session:
        await session.execute(delete(WeChatToken))
        await session.commit()
    app = create_app(settings, database=database, run_migrations=False)
    app.state.wechat = WeChatClient.from_settings(wechat_http, database, settings)
    yield app
    async with database.writer() as session:
        for model in (
            NotificationAttempt,
            Notification,
            CustomerAction,
            Customer,
            AdvisorSubscription,
            MiniProgramUser,
        ):
            await session.execute(delete(model))
        await session.execute(delete(User).where(User.username.like("mp-%")))
        await session.commit()


@pytest.fixture
async def live_client(committed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=committed_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def committed_advisor(
    database: Database, *, credits: int = 0, bound: bool = True, active: bool = True
) -> User:
    n = next(_serial)
    async with database.writer() as session:
        advisor = User(
            username=f"mp-advisor-{n}",
            password_hash=hash_password("correct-horse-battery"),
            name=f"顾问{n}",
            role=Role.advisor.value,
            openid=f"o-mp-advisor-{n}" if bound else None,
            is_active=active,
        )
        session.add(advisor)
        await session.flush()
        if credits:
            session.add(
                AdvisorSubscription(
                    advisor_id=advisor.id,
                    template_id=ACTION_TEMPLATE,
                    openid=advisor.openid,
                    subscribed=True,
                    credits=credits,
                )
            )
        await session.commit()
        return advisor
