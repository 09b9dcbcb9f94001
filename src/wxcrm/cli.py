"""The `wxcrm` command: serve, migrate, manage users."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import Database
from wxcrm.core.errors import AppError
from wxcrm.core.logging import configure_logging
from wxcrm.core.metrics import MULTIPROCESS_DIR_VARIABLE, multiprocess_dir
from wxcrm.core.migrations import downgrade as downgrade_schema
from wxcrm.core.migrations import migrate as run_migrations
from wxcrm.core.migrations import schema_state
from wxcrm.core.settings import get_settings
from wxcrm.jobs import scheduled_jobs
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.users import service as users_service
from wxcrm.users.models import Role, User
from wxcrm.users.schemas import PASSWORD_MIN
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.sim import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from wxcrm.wechat.transport import wechat_http_client

T = TypeVar("T")

WORKER_HEALTHCHECK_SECONDS = 60

app = typer.Typer(help="wxcrm: CRM back end for a WeChat mini program.", no_args_is_help=True)
users_app = typer.Typer(help="Manage staff accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")


def _setup_logging() -> None:
    """Read the settings, refusing to go on (one line each, exit 2) with what is missing or
    wrong, and log as they say."""
    try:
        settings = get_settings()
    except ValidationError as refused:
        for error in refused.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            typer.echo(f"error: configuration: {where + ': ' if where else ''}{message}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="API processes sharing the port (uvicorn's).")
    ] = 1,
) -> None:
    """Run the API server (migrating the database first)."""
    _setup_logging()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "server_header": False,  # no banner naming the server and its version
        # X-Forwarded-Proto (and -For) believed from these only: behind a TLS proxy the app
        # then knows it is served over HTTPS, and the console's cookies are Secure.
        "forwarded_allow_ips": ["127.0.0.1", *get_settings().trusted_proxies],
    }
    if workers == 1:
        from wxcrm.app import create_app

        uvicorn.run(create_app(), **options)
        return
    # Migrated here once; then each process builds its own app (its own pool, group commit
    # and embedded worker): they share only the database (and Redis for rate limits).
    asyncio.run(_migrate())
    with _shared_metrics():
        uvicorn.run(
            "wxcrm.app:create_migrated_app",
            factory=True,
            workers=workers,
            # uvicorn replaces a process that does not answer its supervisor's ping in time,
            # and a new one cannot answer while it imports: seconds on a busy machine, where
            # its default of 5 s killed process after process at start-up.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **options,
        )


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """Let the processes about to start count into one directory, so that any one's
    /metrics answers for all; a directory of our own unless the operator named one."""
    if multiprocess_dir() is not None:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="wxcrm-metrics-") as directory:
        # Read by prometheus-client when each new process imports it.
        os.environ[MULTIPROCESS_DIR_VARIABLE] = directory
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_DIR_VARIABLE]


@app.command()
def worker() -> None:
    """Run a notification delivery worker (as many as you like, beside API processes
    started with WORKER_EMBEDDED=false). SIGTERM finishes the deliveries under way."""
    _setup_logging()

    async def run() -> None:
        settings = get_settings()
        database = Database.from_settings(settings)
        try:
            await run_migrations(database.engine)
            async with wechat_http_client(settings.worker_concurrency + 16) as http:
                wechat = WeChatClient.from_settings(http, database, settings)
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, stop.set)
                await DeliveryWorker(database, wechat, settings, jobs=scheduled_jobs()).run(stop)
        finally:
            await database.dispose()

    asyncio.run(run())


@app.command("wechat-sim")
def wechat_sim(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
    app_id: Annotated[str, typer.Option(help="The AppID it accepts.")] = DEFAULT_APP_ID,
    app_secret: Annotated[str, typer.Option(help="The AppSecret it accepts.")] = DEFAULT_APP_SECRET,
) -> None:
    """Run the WeChat API simulator (for tests and the demo, never production)."""
    _setup_logging()
    from wxcrm.wechat.sim import SimState, create_sim_app

    state = SimState(app_id=app_id, app_secret=app_secret)
    # No access log: WeChat's URLs carry the app secret and the token.
    uvicorn.run(create_sim_app(state), host=host, port=port, log_config=None, access_log=False)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
    sim_port: Annotated[int, typer.Option(help="Port of the WeChat simulator (loopback).")] = 8900,
) -> None:
    """Run the API, its delivery worker and the WeChat simulator in one process, the WeChat
    client pointed at the simulator, with demo data (seeded once). Ctrl-C stops it."""
    from wxcrm.demo import run_demo

    run_demo(host=host, port=port, sim_port=sim_port)


@app.command()
def migrate(
    status: Annotated[
        bool, typer.Option("--status", help="Only say which revision the database is at.")
    ] = False,
    down_to: Annotated[
        str | None,
        typer.Option(
            help="Undo the migrations after this revision (a rollback: run it with the release"
            " being rolled back from, before installing the earlier one)."
        ),
    ] = None,
) -> None:
    """Bring the database to the newest schema (or say where it is, or take it back)."""
    _setup_logging()

    async def run() -> str:
        database = Database.from_settings(get_settings())
        try:
            if down_to is not None:
                await downgrade_schema(database.engine, down_to)
            elif not status:
                await run_migrations(database.engine)
            state = await schema_state(database.engine)
        finally:
            await database.dispose()
        at = ", ".join(state.current) or "no revision (empty)"
        if state.up_to_date:
            said = f"database is at the newest schema ({state.newest})"
        else:
            said = f"database is at {at}; the newest schema of this release is {state.newest}"
        if status:  # the revisions a rollback may go down to
            said += "\nrevisions of this release, newest first:\n" + "\n".join(
                f"  {revision}{' *' if revision in state.current else '  '} {doc}"
                for revision, doc in state.history
            )
        return said

    try:
        typer.echo(asyncio.run(run()))
    except CommandError as refused:  # an unknown revision: alembic's words, no traceback
        typer.echo(f"error: {refused}", err=True)
        raise typer.Exit(2) from None


async def _migrate() -> None:
    database = Database.from_settings(get_settings())
    try:
        await run_migrations(database.engine)
    finally:
        await database.dispose()


def _users_command(change: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `change` in one committed transaction; a refusal (unknown user, bad or taken
    phone ...) is one line on stderr and exit code 1, never a traceback."""
    _setup_logging()

    async def run() -> T:
        database = Database.from_settings(get_settings())
        try:
            await run_migrations(database.engine)
            async with database.writer() as session:
                outcome = await change(session)
                await session.commit()
                return outcome
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except AppError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


@users_app.command("create")
def create_user(
    username: Annotated[str, typer.Option(help="Login name.")],
    password: Annotated[str, typer.Option(help=f"Password (at least {PASSWORD_MIN} characters).")],
    role: Annotated[Role, typer.Option(help="admin, manager or advisor.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the username).")] = None,
    phone: Annotated[
        str | None,
        typer.Option(help="Mainland mobile (+86, spaces, dashes allowed): the mini-program login."),
    ] = None,
    department: Annotated[str | None, typer.Option(help="Department (部门).")] = None,
) -> None:
    """Create a staff account (use it for the first admin)."""
    if len(password) < PASSWORD_MIN:
        typer.echo(f"error: the password must have at least {PASSWORD_MIN} characters", err=True)
        raise typer.Exit(2)

    async def create(session: AsyncSession) -> User:
        return await users_service.create_user(
            session,
            username=username,
            password=password,
            role=role,
            name=name,
            phone=phone,
            department=department,
        )

    user = _users_command(create)
    typer.echo(f"created {role.value} {user.username} ({user.id}){_described(user)}")


@users_app.command("update")
def update_user(
    username: Annotated[str, typer.Argument(help="Login name.")],
    phone: Annotated[
        str | None, typer.Option(help="Mainland mobile; an empty string removes it.")
    ] = None,
    department: Annotated[
        str | None, typer.Option(help="Department; an empty string removes it.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    role: Annotated[Role | None, typer.Option(help="admin, manager or advisor.")] = None,
    unbind_wechat: Annotated[
        bool,
        typer.Option(
            "--unbind-wechat",
            help="Clear the bound WeChat: the next mini-program phone login binds its own.",
        ),
    ] = False,
) -> None:
    """Change a staff account's phone, department, name or role, or clear its WeChat."""
    if phone is None and department is None and name is None and role is None and not unbind_wechat:
        typer.echo(
            "error: nothing to change: give --phone, --department, --name, --role"
            " or --unbind-wechat",
            err=True,
        )
        raise typer.Exit(2)

    async def update(session: AsyncSession) -> tuple[User, bool]:
        user = await users_service.update_user(
            session, username, phone=phone, department=department, name=name, role=role
        )
        return user, unbind_wechat and await users_service.unbind_openid(session, user)

    user, unbound = _users_command(update)
    typer.echo(f"updated {user.role} {user.username}: name {user.name}{_described(user)}")
    if unbound:
        typer.echo("unbound its WeChat: the next mini-program phone login binds the one it uses")
    elif unbind_wechat:
        typer.echo("no WeChat was bound to it")


def _described(user: User) -> str:
    return f", phone {user.phone or '-'}, department {user.department or '-'}"


def _set_active(username: str, *, active: bool) -> None:
    async def change(session: AsyncSession) -> User:
        return await users_service.set_active(session, username, active=active)

    _users_command(change)
    typer.echo(f"{'enabled' if active else 'disabled'} {username}")


@users_app.command("disable")
def disable_user(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable a staff account: it can no longer log in, and its tokens stop working now."""
    _set_active(username, active=False)


@users_app.command("enable")
def enable_user(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Re-enable a disabled staff account."""
    _set_active(username, active=True)
