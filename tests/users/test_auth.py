"""Staff login, tokens and role checks."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from subprocess import PIPE

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import TEST_SECRET_KEY, assert_error
from tests.factories import DEFAULT_PASSWORD, make_user
from wxcrm.core.db import Database
from wxcrm.core.models import utcnow
from wxcrm.core.security import create_token
from wxcrm.core.settings import Settings
from wxcrm.jobs import scheduled_jobs
from wxcrm.users.deps import CurrentManager
from wxcrm.users.models import Role, User
from wxcrm.users.service import forget_signed_out, sign_out


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": password})


async def test_login_returns_a_token_that_me_accepts(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, Role.manager, name="王经理")
    response = await login(client, user.username, DEFAULT_PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["message"] == "登录成功"
    assert body["data"]["user"]["_id"] == user.id
    assert body["data"]["user"]["role"] == "manager"
    assert body["data"]["access_token"] == body["data"]["token"]  # the original's name
    assert "password" not in response.text and "hash" not in response.text

    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {body['data']['token']}"}
    )
    assert me.status_code == 200, me.text
    assert me.json()["data"]["name"] == "王经理"
    assert me.json()["data"]["username"] == user.username


async def test_wrong_password_and_unknown_user_get_the_same_401(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    wrong = assert_error(
        await login(client, user.username, "not-the-password"), 401, "UNAUTHORIZED"
    )
    unknown = assert_error(await login(client, "nobody-here", "whatever"), 401, "UNAUTHORIZED")
    assert wrong["message"] == unknown["message"] == "用户名或密码错误"


async def test_inactive_user_cannot_log_in(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    user.is_active = False
    await session.flush()
    assert_error(await login(client, user.username, DEFAULT_PASSWORD), 401, "UNAUTHORIZED")


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    body = assert_error(await client.get("/api/auth/me"), 401, "UNAUTHORIZED")
    assert body["message"] == "缺少登录凭证"


async def test_expired_token_is_401(client: httpx.AsyncClient, session: AsyncSession) -> None:
    user = await make_user(session)
    token = create_token(
        TEST_SECRET_KEY,
        user.id,
        "staff",
        timedelta(minutes=5),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    body = assert_error(response, 401, "UNAUTHORIZED")
    assert body["message"] == "登录已过期，请重新登录"


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        create_token(
            "some-other-key-that-is-long-enough-32b", "x" * 24, "staff", timedelta(hours=1)
        ),
        create_token(TEST_SECRET_KEY, "x" * 24, "miniprogram", timedelta(hours=1)),
    ],
    ids=["garbage", "forged", "mini-program-token"],
)
async def test_invalid_tokens_are_401(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "UNAUTHORIZED")


async def test_token_of_a_deactivated_user_stops_working(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    token = (await login(client, user.username, DEFAULT_PASSWORD)).json()["data"]["token"]
    user.is_active = False
    await session.flush()
    response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "UNAUTHORIZED")


async def test_role_check_lets_managers_through_and_stops_advisors(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    @app.get("/api/test-managers-only")
    async def managers_only(user: CurrentManager) -> dict[str, str]:
        return {"role": user.role}

    for role, status in [(Role.admin, 200), (Role.manager, 200), (Role.advisor, 403)]:
        user = await make_user(session, role)
        token = (await login(client, user.username, DEFAULT_PASSWORD)).json()["data"]["token"]
        response = await client.get(
            "/api/test-managers-only", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == status, (role, response.text)
        if status == 403:
            assert_error(response, 403, "FORBIDDEN")


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wxcrm", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_user_made_by_the_cli_can_log_in(
    client: httpx.AsyncClient, database: Database, database_url: str
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET_KEY}
    create = ("users", "create", "--username", "cli-admin", "--role", "admin")
    try:
        code, out, err = await run_cli(
            *create, "--password", "s3cret-pass", "--name", "管理员", env=env
        )
        assert code == 0, err
        assert "created admin cli-admin" in out
        assert "s3cret-pass" not in out + err

        code, _, err = await run_cli(*create, "--password", "another-pass", env=env)
        assert code == 1 and "已存在" in err

        response = await login(client, "cli-admin", "s3cret-pass")
        assert response.status_code == 200, response.text
        assert response.json()["data"]["user"]["role"] == "admin"
        assert response.json()["data"]["user"]["name"] == "管理员"
    finally:
        async with database.writer() as cleanup:
            await cleanup.execute(delete(User).where(User.username == "cli-admin"))
            await cleanup.commit()


async def test_a_signed_out_token_is_refused_and_only_that_session_ends(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    user = await make_user(session)
    token = (await login(client, user.username, DEFAULT_PASSWORD)).json()["data"]["token"]
    other = (await login(client, user.username, DEFAULT_PASSWORD)).json()["data"]["token"]
    await sign_out(session, settings, token)
    await sign_out(session, settings, token)  # twice: nothing more happens
    await sign_out(session, settings, "not-a-token")  # nothing to refuse
    refused = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(refused, 401, "UNAUTHORIZED")
    assert refused.json()["message"] == "已退出登录，请重新登录"
    kept = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {other}"})
    assert kept.status_code == 200


async def test_signed_out_tokens_are_forgotten_once_expired(
    committed: Database, settings: Settings
) -> None:
    lifetime = timedelta(minutes=settings.staff_token_minutes)
    token = create_token(settings.signing_key(), "0" * 24, "staff", lifetime)
    async with committed.writer() as writer:
        await sign_out(writer, settings, token)
        await writer.commit()
    [job] = [job for job in scheduled_jobs() if job.name == "forget_signed_out_tokens"]
    assert await job.run(committed, settings) == 0  # not expired yet: still refused
    after_expiry = utcnow() + lifetime + timedelta(seconds=1)
    assert await forget_signed_out(committed, settings, after_expiry) == 1
