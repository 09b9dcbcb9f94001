"""Health answers from the database; liveness touches nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.conftest import assert_error
from wxcrm.app import create_app
from wxcrm.core.db import Database
from wxcrm.core.migrations import migrate
from wxcrm.core.settings import Settings
from wxcrm.wechat.client import WeChatClient


async def test_health_reports_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json()["data"]["database"] == "ok"


@asynccontextmanager
async def app_over(
    database: Database, settings: Settings, wechat_http: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose database is `database` (disposed of afterwards)."""
    app = create_app(settings, database=database, run_migrations=False)
    app.state.wechat = WeChatClient.from_settings(wechat_http, database, settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client
    finally:
        await database.dispose()


async def test_health_is_503_when_the_database_is_unreachable(
    settings: Settings, wechat_http: httpx.AsyncClient
) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    unreachable = Database.from_url("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    async with app_over(unreachable, settings, wechat_http) as client:
        body = assert_error(await client.get("/api/health"), 503, "SERVICE_UNAVAILABLE")
        assert body["error"]["details"]["database"] == "down"
        live = await client.get("/api/health/live")
        assert live.status_code == 200
        # A request needing the database gets a 503 envelope too, not a 500.
        login = await client.post("/api/auth/login", json={"username": "a", "password": "b"})
        assert_error(login, 503, "SERVICE_UNAVAILABLE")


async def test_health_is_503_when_the_database_answers_but_refuses_writes(
    settings: Settings, wechat_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    # A database that still answers SELECT 1 but takes no write: health must not say ok.
    writable = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'wxcrm.db'}")
    await migrate(writable.engine)
    await writable.dispose()
    read_only = Database.from_url(
        f"sqlite+aiosqlite:///file:{tmp_path / 'wxcrm.db'}?mode=ro&uri=true"
    )
    async with app_over(read_only, settings, wechat_http) as client:
        body = assert_error(await client.get("/api/health"), 503, "SERVICE_UNAVAILABLE")
        assert body["error"]["details"]["database"] == "down"
