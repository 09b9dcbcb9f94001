"""The application factory: settings, database, routers, error handlers, lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from wxcrm import __version__
from wxcrm.console.router import router as console_router
from wxcrm.core.db import Database, refresh_planner_statistics
from wxcrm.core.errors import ERROR_RESPONSES, install_error_handlers
from wxcrm.core.groupcommit import GroupCommit
from wxcrm.core.logging import configure_logging
from wxcrm.core.middleware import (
    BodySizeLimitMiddleware,
    RefuseNulMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from wxcrm.core.migrations import migrate
from wxcrm.core.ratelimit import RateLimiter
from wxcrm.core.settings import Settings, get_settings
from wxcrm.customers.assignment.router import router as assignment_router
from wxcrm.customers.pool.router import router as pool_router
from wxcrm.customers.records.router import router as records_router
from wxcrm.customers.staffapp.refusals import Refused
from wxcrm.customers.staffapp.router import answer_refusal
from wxcrm.customers.staffapp.router import router as staffapp_router
from wxcrm.customers.transfer.router import router as transfer_router
from wxcrm.customers.transfer.service import MAX_IMPORT_BYTES
from wxcrm.jobs import scheduled_jobs
from wxcrm.miniprogram.push import router as push_router
from wxcrm.miniprogram.router import router as miniprogram_router
from wxcrm.miniprogram.service import record_customer_actions
from wxcrm.notifications.router import router as notifications_router
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.ops.metrics import router as metrics_router
from wxcrm.ops.router import router as health_router
from wxcrm.users.router import router as auth_router
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.transport import wechat_http_client

log = structlog.get_logger(__name__)


@asynccontextmanager
async def embedded_delivery(
    database: Database, wechat: WeChatClient, settings: Settings, *, enabled: bool
) -> AsyncIterator[None]:
    """Run a delivery worker beside the API for as long as the app runs."""
    if not enabled:
        yield
        return
    stop = asyncio.Event()
    worker = DeliveryWorker(database, wechat, settings, jobs=scheduled_jobs())
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()  # it finishes the deliveries under way, then returns
        await task


MULTIPART_ROOM = 64 * 1024


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    run_migrations: bool = True,
    embedded_worker: bool | None = None,
) -> FastAPI:
    """Build the app. Tests hand in their own `database`; the server makes one from settings.

    The delivery worker runs inside the app's process unless settings (WORKER_EMBEDDED)
    or `embedded_worker` say that separate `wxcrm worker` processes do it.
    """
    settings = settings or get_settings()
    owns_database = database is None
    run_worker = settings.worker_embedded if embedded_worker is None else embedded_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = app.state.database
        if run_migrations:
            await migrate(db.engine)
        await refresh_planner_statistics(db)
        settings.signing_key()  # generate the development key now, not on the first login
        async with wechat_http_client(settings.worker_concurrency + 16) as http:
            app.state.wechat = WeChatClient.from_settings(http, db, settings)
            log.info("started", env=settings.env.value, database=db.engine.url.get_backend_name())
            async with embedded_delivery(db, app.state.wechat, settings, enabled=run_worker):
                try:
                    yield
                finally:
                    if owns_database:
                        await db.dispose()

    app = FastAPI(
        title="wxcrm",
        version=__version__,
        summary="CRM back end for the WeChat mini program of a domestic-services company",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        responses=ERROR_RESPONSES,  # every route's failures, in /openapi.json
    )
    app.state.settings = settings
    app.state.database = database or Database.from_settings(settings)
    app.state.rate_limiter = RateLimiter(settings)
    app.state.action_commits = GroupCommit(
        app.state.database.writer,
        record_customer_actions,
        max_batch=settings.action_batch_max,
        # PostgreSQL takes several transactions at once; SQLite one writer at a time.
        writers=1 if app.state.database.is_sqlite else settings.action_writers,
    )
    install_error_handlers(app)
    # The staff mini program reads a refusal from a success status (its routes' own style).
    app.add_exception_handler(Refused, answer_refusal)
    # Outermost last: request id, then headers, CORS, body size, and NUL refusal innermost
    # (it reads bodies whose size is already bounded).
    app.add_middleware(RefuseNulMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        overrides={
            "/api/customers/import": MAX_IMPORT_BYTES,
            # The console's upload: the file's own limit is checked beside its field, so the
            # request may carry the multipart envelope around a file of that size.
            "/import": MAX_IMPORT_BYTES + MULTIPART_ROOM,
        },
    )
    if settings.cors_allow_origins:
        # Bearer tokens, not cookies, authenticate cross-origin callers: no credentials.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            expose_headers=["X-Request-Id", "Retry-After"],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(auth_router)
    app.include_router(notifications_router)
    app.include_router(miniprogram_router)
    app.include_router(push_router)
    # Before the console's customer routers: `/api/customers/{id}` is no mini-program path.
    app.include_router(staffapp_router)
    app.include_router(transfer_router)
    app.include_router(pool_router)  # before records: `public-pool` is no customer id
    app.include_router(assignment_router)
    app.include_router(records_router)
    app.include_router(console_router)
    return app


def create_migrated_app() -> FastAPI:
    """The app of one of `wxcrm serve --workers N`'s processes: the command has migrated,
    and this new process logs as the command does."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, run_migrations=False)
