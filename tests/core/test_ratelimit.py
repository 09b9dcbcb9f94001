"""Rate limits: wrong passwords lock a username (longer each time), bad WeChat codes stop
before they reach WeChat, addresses come from trusted proxies only, and limits held in
Redis hold across processes."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Configure, assert_error
from tests.factories import DEFAULT_PASSWORD, make_user, mp_headers
from tests.live import STAFF_PASSWORD, create_staff, own_database, served, server_env
from tests.miniprogram.conftest import action_body
from wxcrm.customers.models import CustomerAction
from wxcrm.users.models import Role
from wxcrm.wechat.sim import SimControl


async def login(
    client: httpx.AsyncClient, username: str, password: str, **headers: str
) -> httpx.Response:
    return await client.post(
        "/api/auth/login", json={"username": username, "password": password}, headers=headers
    )


def assert_limited(response: httpx.Response) -> int:
    body = assert_error(response, 429, "RATE_LIMITED")
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert body["error"]["details"]["retryAfter"] == retry_after
    return retry_after


async def test_wrong_passwords_lock_the_username_even_for_the_right_password(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    target = (await make_user(session, Role.admin)).username
    colleague = (await make_user(session)).username
    await session.commit()  # a refused request rolls back what the test has not committed
    for _ in range(5):
        assert_error(await login(client, target, "guess"), 401, "UNAUTHORIZED")
    retry_after = assert_limited(await login(client, target, DEFAULT_PASSWORD))
    assert retry_after <= 5 * 60
    # Only that username: a colleague in the same office still logs in.
    assert (await login(client, colleague, DEFAULT_PASSWORD)).status_code == 200


async def test_each_lockout_is_longer_than_the_last(
    client: httpx.AsyncClient, session: AsyncSession, configure_limits: Configure
) -> None:
    configure_limits(rate_limit_login_failures_per_username="2/2second;3/hour")
    user = (await make_user(session)).username
    await session.commit()
    for _ in range(2):
        assert_error(await login(client, user, "guess"), 401, "UNAUTHORIZED")
    assert assert_limited(await login(client, user, "guess")) <= 2
    await asyncio.sleep(2.1)
    # The short window is over; one more wrong password fills the hourly one.
    assert_error(await login(client, user, "guess"), 401, "UNAUTHORIZED")
    assert assert_limited(await login(client, user, DEFAULT_PASSWORD)) > 60


async def test_a_right_password_clears_the_usernames_failures(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = (await make_user(session)).username
    await session.commit()
    for _ in range(4):
        assert_error(await login(client, user, "typo"), 401, "UNAUTHORIZED")
    assert (await login(client, user, DEFAULT_PASSWORD)).status_code == 200
    for _ in range(4):
        assert_error(await login(client, user, "typo"), 401, "UNAUTHORIZED")
    assert (await login(client, user, DEFAULT_PASSWORD)).status_code == 200


async def test_one_address_guessing_many_usernames_is_stopped(
    client: httpx.AsyncClient, session: AsyncSession, configure_limits: Configure
) -> None:
    configure_limits(rate_limit_login_failures_per_ip="3/minute")
    user = (await make_user(session)).username
    await session.commit()
    for n in range(3):
        assert_error(await login(client, f"guess{n}", "guess"), 401, "UNAUTHORIZED")
    assert_limited(await login(client, user, DEFAULT_PASSWORD))


async def test_forwarded_addresses_count_only_from_trusted_proxies(
    client: httpx.AsyncClient, configure_limits: Configure
) -> None:
    configure_limits(rate_limit_login_failures_per_ip="2/minute")
    for n in range(2):
        forwarded = {"X-Forwarded-For": f"203.0.113.{n}"}
        assert_error(await login(client, f"x{n}", "guess", **forwarded), 401, "UNAUTHORIZED")
    # Anyone can write the header: from an untrusted peer it changes nothing.
    assert_limited(await login(client, "x9", "guess", **{"X-Forwarded-For": "198.51.100.7"}))

    # Behind our own proxy (the test client's 127.0.0.1), each client has its own count:
    # the nearest address that is not a trusted proxy, whatever the client wrote before it.
    configure_limits(rate_limit_login_failures_per_ip="2/minute", trusted_proxies=["127.0.0.0/8"])
    for spoofed in ("198.51.100.1", "198.51.100.2"):
        forwarded = {"X-Forwarded-For": f"{spoofed}, 203.0.113.5"}
        assert_error(await login(client, "y", "guess", **forwarded), 401, "UNAUTHORIZED")
    other_client = await login(client, "y", "guess", **{"X-Forwarded-For": "203.0.113.6"})
    assert_error(other_client, 401, "UNAUTHORIZED")
    assert_limited(await login(client, "z", "guess", **{"X-Forwarded-For": "203.0.113.5"}))


async def test_bad_login_codes_stop_before_they_reach_wechat(
    client: httpx.AsyncClient, sim_control: SimControl
) -> None:
    before = (await sim_control.stats())["calls"]["jscode2session"]
    for n in range(20):
        response = await client.post("/api/wechat/openid", json={"code": f"bad-code-{n}"})
        assert_error(response, 400, "BAD_REQUEST")
    assert_limited(await client.post("/api/wechat/openid", json={"code": "bad-code-x"}))
    # A good code from that address waits too: the window is full of failures.
    good = await sim_control.mint_login_code("o-rate-limited")
    assert_limited(await client.post("/api/wechat/openid", json={"code": good}))
    assert (await sim_control.stats())["calls"]["jscode2session"] - before == 20


async def test_good_codes_are_counted_loosely(
    client: httpx.AsyncClient, sim_control: SimControl
) -> None:
    # A mini program whose users share one proxy address: a hundred logins go through.
    for n in range(100):
        code = await sim_control.mint_login_code(f"o-crowd-{n}")
        response = await client.post("/api/wechat/openid", json={"code": code})
        assert response.status_code == 200, response.text


async def test_a_customers_actions_are_limited_and_the_refused_one_is_not_recorded(
    client: httpx.AsyncClient,
    session: AsyncSession,
    configure_limits: Configure,
) -> None:
    configure_limits(rate_limit_action_per_openid="3/minute")
    advisor = (await make_user(session)).id
    await session.commit()
    openid = f"o-eager-{uuid.uuid4().hex[:8]}"
    body = action_body(openid, advisor)
    for _ in range(3):
        response = await client.post("/api/customer/action", json=body, headers=mp_headers(openid))
        assert response.status_code == 200, response.text
    assert_limited(await client.post("/api/customer/action", json=body, headers=mp_headers(openid)))
    recorded = await session.scalar(
        select(func.count()).select_from(CustomerAction).where(CustomerAction.openid == openid)
    )
    assert recorded == 3
    # Another customer is not held back by this one.
    other = f"o-calm-{uuid.uuid4().hex[:8]}"
    response = await client.post(
        "/api/customer/action",
        json=action_body(other, advisor, customerPhone="13900000001"),
        headers=mp_headers(other),
    )
    assert response.status_code == 200, response.text


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


async def test_limits_in_redis_hold_across_processes(tmp_path: Path) -> None:
    if not redis_reachable():
        if os.environ.get("CI"):
            pytest.fail("CI must have Redis at 127.0.0.1:6379")
        pytest.skip("no Redis at 127.0.0.1:6379")
    async with own_database("sqlite", tmp_path) as url:
        env = server_env(
            url,
            tmp_path,
            RATE_LIMIT_STORAGE_URL="redis://127.0.0.1:6379/0",
            RATE_LIMIT_KEY_PREFIX=f"wxcrm-test-{uuid.uuid4().hex}",
        )
        await create_staff(env, "boss", role="admin")
        async with (
            served(env, tmp_path) as first,
            served(env, tmp_path) as second,
            httpx.AsyncClient(timeout=30) as http,
        ):
            wrong = {"username": "boss", "password": "guess"}
            for api in (first, second, first, second, first):
                response = await http.post(f"{api.url}/api/auth/login", json=wrong)
                assert_error(response, 401, "UNAUTHORIZED")
            right = {"username": "boss", "password": STAFF_PASSWORD}
            for api in (first, second):
                assert_limited(await http.post(f"{api.url}/api/auth/login", json=right))
