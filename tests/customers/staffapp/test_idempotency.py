"""`Idempotency-Key` on create (§4.4, where the original only logged it): a retry gets the
first answer and makes no second customer, also when both arrive at once; the same key with
another body is a 409; a refused create is not remembered. Requests commit here, as in
production, through the committed app."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.conftest import assert_error
from tests.customers.staffapp.conftest import BASE, ok, refused
from tests.factories import make_user, new_phone, staff_headers
from wxcrm.core.db import Database
from wxcrm.core.idempotency import KEY_LIFETIME, IdempotentAnswer, forget_expired
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.models import Customer
from wxcrm.jobs import scheduled_jobs
from wxcrm.users.models import Role, User

KEY = "miniprogram_1796000000000_abcdefghi"


def form(**changes: Any) -> dict[str, Any]:
    return {
        "name": "陈女士",
        "phone": new_phone(),
        "leadSource": "美团",
        "contractStatus": "匹配中",
        "leadLevel": "A类",
        **changes,
    }


async def staff(database: Database, role: Role = Role.advisor) -> User:
    async with database.writer() as session:
        user = await make_user(session, role)
        await session.commit()
        return user


async def customers(database: Database) -> int:
    async with database.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)


async def create(
    client: httpx.AsyncClient, user: User, body: dict[str, Any], key: str | None = KEY
) -> httpx.Response:
    headers = staff_headers(user) | ({"Idempotency-Key": key} if key is not None else {})
    return await client.post(f"{BASE}/create", json=body, headers=headers)


async def test_a_retry_gets_the_first_answer_and_makes_no_second_customer(
    live_client: httpx.AsyncClient, committed: Database
) -> None:
    advisor = await staff(committed)
    body = form()
    first = await create(live_client, advisor, body)
    data = ok(first, "客户创建成功", status=201)
    again = await create(live_client, advisor, body)
    assert again.status_code == 201
    assert again.content == first.content  # byte for byte, its timestamp too
    assert await customers(committed) == 1
    # Keys are per user: another advisor's same key is its own request.
    colleague = await staff(committed)
    theirs = ok(await create(live_client, colleague, form()), "客户创建成功", status=201)
    assert theirs["id"] != data["id"] and await customers(committed) == 2


async def test_the_same_key_with_another_body_is_a_409(
    live_client: httpx.AsyncClient, committed: Database
) -> None:
    advisor = await staff(committed)
    ok(await create(live_client, advisor, form(name="甲")), "客户创建成功", status=201)
    body = assert_error(await create(live_client, advisor, form(name="乙")), 409, "CONFLICT")
    assert body["message"] == "Idempotency-Key 已用于另一个不同的请求"
    assert await customers(committed) == 1


async def test_a_refused_create_is_not_remembered(
    live_client: httpx.AsyncClient, committed: Database
) -> None:
    advisor = await staff(committed)
    no_contact = form(phone="")
    for _ in range(2):  # refused again, not "in progress"
        refused(
            await create(live_client, advisor, no_contact),
            "请填写手机号或微信号",
            "MISSING_CONTACT",
            status=201,
        )
    async with committed.reader() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotentAnswer)) == 0
    # Fixed and sent again under the same key: done once.
    fixed = form()
    first = ok(await create(live_client, advisor, fixed), "客户创建成功", status=201)
    assert ok(await create(live_client, advisor, fixed), "客户创建成功", status=201) == first
    assert await customers(committed) == 1


async def test_requests_at_once_with_one_key_make_one_customer(
    live_client: httpx.AsyncClient, committed: Database
) -> None:
    advisor = await staff(committed)
    body = form()
    answers = await asyncio.gather(*(create(live_client, advisor, body) for _ in range(4)))
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.text for answer in answers}) == 1, [a.text for a in answers]
    assert answers[0].json()["success"] is True
    assert await customers(committed) == 1


async def test_a_key_longer_than_128_characters_is_refused(
    live_client: httpx.AsyncClient, committed: Database
) -> None:
    advisor = await staff(committed)
    response = await create(live_client, advisor, form(), key="k" * 129)
    assert_error(response, 400, "VALIDATION_ERROR")
    assert await customers(committed) == 0
    # Without a key (or with an empty one), each request is its own.
    body = form()
    ok(await create(live_client, advisor, body, key=""), "客户创建成功", status=201)
    refused(
        await create(live_client, advisor, body, key=None),
        "该手机号已存在客户记录",
        "DUPLICATE_PHONE",
        status=201,
    )


async def test_keys_are_forgotten_after_a_day_by_the_scheduled_job(
    live_client: httpx.AsyncClient, committed: Database, settings: Settings
) -> None:
    advisor = await staff(committed)
    ok(await create(live_client, advisor, form(name="甲")), "客户创建成功", status=201)
    [job] = [job for job in scheduled_jobs() if job.name == "forget_idempotency_keys"]
    assert await job.run(committed, settings) == 0  # a fresh key stays
    a_day_later = utcnow() + KEY_LIFETIME + timedelta(seconds=1)
    assert await forget_expired(committed, settings, a_day_later) == 1
    # Forgotten, the key is a new request's: another body is no longer a conflict.
    ok(await create(live_client, advisor, form(name="乙")), "客户创建成功", status=201)
    assert await customers(committed) == 2
