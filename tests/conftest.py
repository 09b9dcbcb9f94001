"""Shared fixtures: one migrated database per backend, one rolled-back transaction per test.

Every test that uses the database runs on SQLite, and again on PostgreSQL when
WXCRM_TEST_POSTGRES_URL names a database (whose public schema it empties first).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.app import create_app
from wxcrm.core.db import Database, ShortReads, get_session, get_short_reads
from wxcrm.core.migrations import migrate
from wxcrm.core.ratelimit import RateLimiter
from wxcrm.core.settings import Environment, Settings
from wxcrm.miniprogram.deps import get_action_recorder
from wxcrm.miniprogram.service import record_customer_action
from wxcrm.models import Base
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.models import WeChatToken
from wxcrm.wechat.sim import SimControl, SimServer, SimState

POSTGRES_URL = os.environ.get("WXCRM_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
TEST_SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'wxcrm.db'}"
    return POSTGRES_URL


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database.from_url(database_url)
    if not db.is_sqlite:
        async with db.engine.begin() as connection:
            await connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            await connection.exec_driver_sql("CREATE SCHEMA public")
    await migrate(db.engine)
    yield db
    await db.dispose()


SIM_APP_ID = "wx0000000000000000"
SIM_SECRET = "sim-app-secret"
ACTION_TEMPLATE = "tmpl-customer-action"
ASSIGN_TEMPLATE = "tmpl-customer-assigned"


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory, sim_url: str) -> Settings:
    """Test settings: WeChat is the simulator, with the seeds' templates configured."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        env=Environment.test,
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        secret_key=TEST_SECRET_KEY,
        wechat_api_base=sim_url,
        wechat_app_id=SIM_APP_ID,
        wechat_app_secret=SIM_SECRET,
        wechat_template_customer_action=ACTION_TEMPLATE,
        wechat_template_customer_assigned=ASSIGN_TEMPLATE,
        miniprogram_cloud_env="cloud1-test",
    )


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """Retries within tenths of a second, a worker that polls and beats often."""
    return settings.model_copy(
        update={
            "outbox_retry_base_seconds": 0.02,
            "outbox_retry_max_seconds": 0.1,
            "worker_poll_seconds": 0.05,
            "worker_heartbeat_seconds": 0.2,
            "worker_stale_seconds": 1.0,
        }
    )


@pytest.fixture(scope="session")
async def wechat_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


@pytest.fixture
async def session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session inside an outer transaction that is rolled back after the test.

    Code under test may commit: with `create_savepoint` its commits release savepoints.
    """
    async with database.engine.connect() as connection:
        transaction = await connection.begin()
        async with AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        ) as test_session:
            yield test_session
        await transaction.rollback()


@pytest.fixture(autouse=True)
def _plain_logs() -> Iterator[None]:
    """Logs rendered plainly: structlog's default renderer takes seconds over the locals
    of a traceback, and a 500 logs one."""
    saved = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(key_order=["event"]),
        ],
        cache_logger_on_first_use=False,
    )
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def _shared_apps(settings: Settings, database: Database) -> dict[str, FastAPI]:
    """One app per database and fixture for the session (`app`'s requests run in the test's
    session, `committed_app`'s commit): making one costs some 50 ms."""
    return {
        fixture: create_app(settings, database=database, run_migrations=False)
        for fixture in ("app", "committed_app")
    }


@pytest.fixture
async def app(
    _shared_apps: dict[str, FastAPI],
    settings: Settings,
    database: Database,
    session: AsyncSession,
    wechat_http: httpx.AsyncClient,
) -> AsyncIterator[FastAPI]:
    """The app, its requests running in the test's rolled-back session."""
    shared = _shared_apps["app"]
    # What the lifespan would have made (ASGITransport runs no lifespan); new for each
    # test, as the simulator is: no token remembered from an earlier one.
    shared.state.wechat = WeChatClient.from_settings(wechat_http, database, settings)

    async def test_session_dependency() -> AsyncIterator[AsyncSession]:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()

    async def test_short_reads() -> ShortReads:
        return lambda: nullcontext(session)

    shared.state.settings = settings
    await shared.state.rate_limiter.reset()  # each test starts with no counts
    shared.dependency_overrides[get_session] = test_session_dependency
    shared.dependency_overrides[get_short_reads] = test_short_reads
    # Actions are written in the test's session too (the committed app's go through the
    # group commit, as in the server).
    shared.dependency_overrides[get_action_recorder] = lambda: partial(
        record_customer_action, session
    )
    yield shared
    shared.dependency_overrides.clear()
    shared.state.settings = settings  # a test may have swapped it


async def forget_token(database: Database) -> None:
    """Delete the stored access token: the simulator was reset and no longer knows it."""
    async with database.writer() as writer:
        await writer.execute(delete(WeChatToken))
        await writer.commit()


@pytest.fixture
async def wechat_token(app: FastAPI, database: Database, sim_control: SimControl) -> str:
    """A fresh access token, stored before the test writes anything.

    On SQLite a token refresh during a request would wait for the test's own open write
    transaction.
    """
    await forget_token(database)
    wechat: WeChatClient = app.state.wechat
    return await wechat.tokens.get()


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    """An HTTP client calling `app` in-process (no lifespan runs)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as http:
        yield http


# -- committed rows: for workers and concurrent requests, which use sessions of their own ----


async def empty_database(database: Database) -> None:
    """Delete every row of every table of the models, children before their parents."""
    async with database.writer() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(table.delete())
        await session.commit()


@pytest.fixture
async def committed(database: Database) -> AsyncIterator[Database]:
    """The database, for tests whose rows must be committed: emptied afterwards.

    The stored access token goes first, as the simulator was reset.
    """
    await forget_token(database)
    yield database
    await empty_database(database)


@pytest.fixture
def committed_settings(settings: Settings) -> Settings:
    """The settings of `committed_app`: a folder overrides this fixture to change them."""
    return settings


@pytest.fixture
async def committed_app(
    _shared_apps: dict[str, FastAPI],
    committed: Database,
    committed_settings: Settings,
    wechat_http: httpx.AsyncClient,
) -> FastAPI:
    """The app with real transactions: each request commits. The database is emptied
    afterwards (`committed`)."""
    app = _shared_apps["committed_app"]
    app.state.settings = committed_settings
    app.state.wechat = WeChatClient.from_settings(wechat_http, committed, committed_settings)
    await app.state.rate_limiter.reset()  # each test starts with no counts
    return app


@pytest.fixture
async def live_client(committed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(committed_app) as http:
        yield http


# -- the WeChat simulator on a loopback port: one server for the session, reset per test ----


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    # Client tests give each test its own app id (so its token row starts empty): the shared
    # simulator accepts any app id. The secret must still be right.
    with SimServer(SimState(any_app_id=True)) as server:
        yield server


@pytest.fixture(scope="session")
def sim_url(sim: SimServer) -> str:
    return sim.base_url


# Clients live for the session: making an httpx client costs tens of milliseconds.
@pytest.fixture(scope="session")
async def _sim_control(sim: SimServer) -> AsyncIterator[SimControl]:
    async with SimControl(sim.base_url) as control:
        yield control


@pytest.fixture(scope="session")
async def _sim_http(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        yield http


@pytest.fixture
async def sim_control(_sim_control: SimControl) -> SimControl:
    """The control client, after a reset: each test starts from an empty simulator."""
    await _sim_control.reset()
    return _sim_control


@pytest.fixture
def sim_http(_sim_http: httpx.AsyncClient, sim_control: SimControl) -> httpx.AsyncClient:
    """A plain HTTP client at the (reset) simulator, for calling WeChat's endpoints by hand."""
    return _sim_http


@pytest.fixture
def structured_logs() -> Iterator[None]:
    """Undoes, after the test, the JSON log configuration the test sets up.

    The test configures logging itself, once output capture is in place: the handler
    keeps the stderr it was given.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The failure envelope (README), with the given status and error code."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert body["data"] is None
    assert body["error"]["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["timestamp"], int)
    return body


REPO_ROOT = Path(__file__).resolve().parents[1]


Configure = Callable[..., None]


@pytest.fixture
def configure_limits(app: FastAPI, settings: Settings) -> Iterator[Configure]:
    """Give the app a limiter built from these settings, for this test only."""

    def configure(**changes: object) -> None:
        app.state.rate_limiter = RateLimiter(settings.model_copy(update=changes))

    yield configure
    app.state.rate_limiter = RateLimiter(settings)
