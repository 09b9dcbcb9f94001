"""Rows for tests: staff of any role (active or not, with or without an openid), customers,
and advisors with subscription credits; in the test's session or committed for good.

`make_*` flush into the session they are given (the test's is rolled back at its end);
`add_*` also commit it and detach the row; `committed_advisor` writes in a transaction of
its own, for what workers and concurrent requests must see (the `committed` fixture
empties the database afterwards).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from functools import cache
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE, TEST_SECRET_KEY
from wxcrm.core.db import Database
from wxcrm.core.models import Base, utcnow
from wxcrm.core.security import create_token, hash_password
from wxcrm.customers.leads import new_customer_number
from wxcrm.customers.models import Customer
from wxcrm.notifications.subscriptions import grant_credits
from wxcrm.users.models import Role, User

DEFAULT_PASSWORD = "correct-horse-battery"
_serial = itertools.count(1)
_phones = itertools.count(13_900_000_000)
_Row = TypeVar("_Row", bound=Base)


@cache
def _password_hash(password: str) -> str:
    return hash_password(password)  # argon2 is slow on purpose: hash each password once


def new_openid() -> str:
    return f"o-staff-{next(_serial)}"


def new_phone() -> str:
    return str(next(_phones))


async def _keep(session: AsyncSession, row: _Row) -> _Row:
    """Commit `row` and detach it. In the test's session a commit releases a savepoint: a
    request that fails rolls back only its own work, but it expires every object still
    attached, and reading one would then need I/O."""
    await session.commit()
    session.expunge(row)
    return row


async def make_user(
    session: AsyncSession,
    role: Role = Role.advisor,
    *,
    username: str | None = None,
    password: str = DEFAULT_PASSWORD,
    name: str | None = None,
    openid: str | None = None,
    active: bool = True,
    credits: int = 0,
    template_id: str = ACTION_TEMPLATE,
) -> User:
    """A staff member who can log in with `password`; with `credits`, that many sends of
    `template_id` in our ledger (WeChat's side is the simulator's)."""
    username = username or f"{role.value}-{next(_serial)}"
    user = User(
        username=username,
        password_hash=_password_hash(password),
        name=name or username,
        role=role.value,
        openid=openid,
        is_active=active,
    )
    session.add(user)
    await session.flush()
    if credits:
        await grant_credits(
            session,
            advisor_id=user.id,
            openid=openid,
            template_id=template_id,
            credits=credits,
        )
    return user


async def add_user(session: AsyncSession, role: Role = Role.advisor, **fields: Any) -> User:
    """`make_user`'s staff member, committed and detached."""
    return await _keep(session, await make_user(session, role, **fields))


async def committed_advisor(
    database: Database,
    *,
    credits: int = 0,
    template_id: str = ACTION_TEMPLATE,
    bound: bool = True,
    active: bool = True,
) -> User:
    """An advisor (with an openid when `bound`) and its credits, committed for good."""
    async with database.writer() as session:
        advisor = await make_user(
            session,
            openid=new_openid() if bound else None,
            active=active,
            credits=credits,
            template_id=template_id,
        )
        await session.commit()
        return advisor


async def make_customer(
    session: AsyncSession,
    owner: User | None = None,
    *,
    name: str | None = None,
    phone: str | None = None,
    **columns: Any,
) -> Customer:
    """A customer of `owner` (None: in the public pool); `columns` set any other field, or
    override these (`assigned_at`, `pool_entered_at`)."""
    now = utcnow()
    values: dict[str, Any] = {
        "customer_no": new_customer_number(),
        "name": name or f"客户{next(_serial)}",
        "phone": phone or new_phone(),
        "owner_id": owner.id if owner else None,
        "assigned_at": now if owner else None,
        "pool_entered_at": None if owner else now,
    }
    customer = Customer(**(values | columns))
    session.add(customer)
    await session.flush()
    return customer


async def add_customer(session: AsyncSession, owner: User | None = None, **fields: Any) -> Customer:
    """`make_customer`'s customer, committed and detached."""
    return await _keep(session, await make_customer(session, owner, **fields))


def staff_headers(user: User) -> dict[str, str]:
    """A staff token for `user`, as POST /api/auth/login issues (without the argon2 cost)."""
    token = create_token(TEST_SECRET_KEY, user.id, "staff", timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


def mp_headers(openid: str) -> dict[str, str]:
    """A mini-program session token for `openid`, as /api/wechat/openid issues."""
    token = create_token(TEST_SECRET_KEY, openid, "miniprogram", timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


async def token_for(client: httpx.AsyncClient, user: User) -> dict[str, str]:
    """Authorization headers of `user` (made with DEFAULT_PASSWORD), by logging in."""
    response = await client.post(
        "/api/auth/login", json={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['data']['token']}"}
