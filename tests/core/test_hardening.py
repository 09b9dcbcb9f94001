"""What every answer carries and withholds: security headers, no API pages in production,
an explicit CORS policy, no WeChat error text for strangers, and staff accounts that an
operator can switch off at once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.live import create_staff, own_database, run_cli, served, server_env, staff_token
from wxcrm.app import create_app
from wxcrm.core import security
from wxcrm.core.db import Database
from wxcrm.core.settings import Environment, Settings
from wxcrm.wechat.sim import SimControl


async def test_api_answers_are_not_sniffed_or_stored(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/health/live"),
        await client.get("/api/customers"),  # a 401
        await client.get("/api/no-such-route"),
    ):
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]
        assert response.headers["cache-control"] == "no-store"


def app_with(settings: Settings, database: Database, **changes: Any) -> FastAPI:
    return create_app(settings.model_copy(update=changes), database=database, run_migrations=False)


async def get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.get(path, headers=headers)


async def test_api_pages_are_off_in_production_unless_enabled(
    settings: Settings, database: Database
) -> None:
    production = app_with(settings, database, env=Environment.production)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert (await get(production, path)).status_code == 404, path
    enabled = app_with(settings, database, env=Environment.production, api_docs=True)
    assert (await get(enabled, "/openapi.json")).status_code == 200
    development = app_with(settings, database, env=Environment.development)
    assert (await get(development, "/docs")).status_code == 200


async def preflight(app: FastAPI, origin: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.options(
            "/api/customers",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )


async def test_no_origin_is_allowed_cross_origin_unless_listed(
    settings: Settings, database: Database
) -> None:
    closed = app_with(settings, database)
    answer = await preflight(closed, "https://evil.example")
    assert "access-control-allow-origin" not in answer.headers
    plain = await get(closed, "/api/health/live", Origin="https://evil.example")
    assert "access-control-allow-origin" not in plain.headers

    listed = app_with(settings, database, cors_allow_origins=["https://console.example.cn"])
    allowed = await preflight(listed, "https://console.example.cn")
    assert allowed.headers["access-control-allow-origin"] == "https://console.example.cn"
    assert "access-control-allow-credentials" not in allowed.headers
    refused = await preflight(listed, "https://evil.example")
    assert "access-control-allow-origin" not in refused.headers


async def test_wechats_error_text_never_reaches_an_unauthenticated_caller(
    client: httpx.AsyncClient, sim_control: SimControl
) -> None:
    await sim_control.fault(
        "jscode2session", count=1, errcode=-1, errmsg="system error rid: 6789-internal"
    )
    code = await sim_control.mint_login_code("o-unlucky")
    response = await client.post("/api/wechat/openid", json={"code": code})
    body = assert_error(response, 502, "WECHAT_ERROR")
    assert body["error"]["details"] == {"errcode": -1}
    assert "rid" not in response.text and "internal" not in response.text


async def test_passwords_are_checked_off_the_event_loop(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # argon2 costs tens of milliseconds by design: on the loop, every other request of the
    # process would wait that long behind each login.
    user = await make_user(session)
    threads: list[int] = []
    real = security._hasher

    class RecordingHasher:
        def verify(self, password_hash: str, password: str) -> bool:
            threads.append(threading.get_ident())
            return real.verify(password_hash, password)

        def check_needs_rehash(self, password_hash: str) -> bool:
            return real.check_needs_rehash(password_hash)

    monkeypatch.setattr(security, "_hasher", RecordingHasher())
    for password in (DEFAULT_PASSWORD, "wrong"):
        await client.post("/api/auth/login", json={"username": user.username, "password": password})
    await client.post("/api/auth/login", json={"username": "nobody", "password": "x"})
    assert len(threads) == 3
    assert threading.get_ident() not in threads


async def test_a_disabled_account_is_refused_at_once_and_can_be_enabled_again(
    tmp_path: Path,
) -> None:
    async with own_database("sqlite", tmp_path) as url:
        env = server_env(url, tmp_path)
        await create_staff(env, "leaver")
        async with (
            served(env, tmp_path) as api,
            httpx.AsyncClient(base_url=api.url, timeout=30) as http,
        ):
            token = await staff_token(http, "leaver")
            auth = {"Authorization": f"Bearer {token}"}
            assert (await http.get("/api/auth/me", headers=auth)).status_code == 200
            # A server answer carries no banner naming the server or its version.
            assert "server" not in (await http.get("/api/health/live")).headers

            code, out, err = await run_cli("users", "disable", "leaver", env=env)
            assert code == 0 and "disabled leaver" in out, err
            assert_error(await http.get("/api/auth/me", headers=auth), 401, "UNAUTHORIZED")
            login = await http.post(
                "/api/auth/login", json={"username": "leaver", "password": "correct-horse-battery"}
            )
            assert_error(login, 401, "UNAUTHORIZED")

            code, out, err = await run_cli("users", "enable", "leaver", env=env)
            assert code == 0 and "enabled leaver" in out, err
            assert (await http.get("/api/auth/me", headers=auth)).status_code == 200

            code, _, err = await run_cli("users", "disable", "nobody", env=env)
            assert code == 1 and "不存在" in err
