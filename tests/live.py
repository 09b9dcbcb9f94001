"""A real `wxcrm serve` process over its own database, for what only shows over real HTTP:
connection pools, timing, limits shared between processes, files on disk."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, TEST_SECRET_KEY
from wxcrm.core.db import Database
from wxcrm.core.migrations import migrate
from wxcrm.users.models import Role
from wxcrm.users.service import create_user

STAFF_PASSWORD = "correct-horse-battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def own_database(backend: str, folder: Path) -> AsyncIterator[str]:
    """A database of its own: a SQLite file in `folder`, or a PostgreSQL database made for
    it on the test server and dropped after (a served process commits for real)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'wxcrm.db'}"
        return
    url = make_url(POSTGRES_URL)
    name = f"wxcrm_live_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def server_env(database_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "WXCRM_"))}
    return {
        **env,
        "WXCRM_ENV": "test",
        "WXCRM_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "WORKER_EMBEDDED": "false",
        "LOG_LEVEL": "WARNING",
        **settings,
    }


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wxcrm", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), err.decode()


async def migrate_database(env: dict[str, str]) -> None:
    """`wxcrm migrate` on the served database, run here: a `wxcrm` process costs seconds."""
    database = Database.from_url(env["DATABASE_URL"])
    try:
        await migrate(database.engine)
    finally:
        await database.dispose()


async def create_staff(
    env: dict[str, str],
    username: str,
    role: str = "advisor",
    *,
    name: str | None = None,
    phone: str | None = None,
) -> None:
    """A staff account with STAFF_PASSWORD in the served database, made as `wxcrm users
    create` makes it (migrating first, then its service), in this process: a `wxcrm`
    process each costs seconds."""
    database = Database.from_url(env["DATABASE_URL"])
    try:
        await migrate(database.engine)
        async with database.writer() as session:
            await create_user(
                session,
                username=username,
                password=STAFF_PASSWORD,
                role=Role(role),
                name=name,
                phone=phone,
            )
            await session.commit()
    finally:
        await database.dispose()


@dataclass
class Served:
    url: str
    process: asyncio.subprocess.Process
    log_file: Path

    def output(self) -> str:
        """What the process has printed so far."""
        return self.log_file.read_text(errors="replace")


@asynccontextmanager
async def served(env: dict[str, str], log_dir: Path) -> AsyncIterator[Served]:
    """`wxcrm serve` on a free loopback port, answering health checks; stopped after.

    Its output goes to a file in `log_dir`: a pipe nobody reads would fill up and stall
    the server."""
    port = free_port()
    log_file = log_dir / f"serve-{port}.log"
    with log_file.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wxcrm", "serve", "--port", str(port),
            env=env, stdout=sink, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(150):
                try:
                    await http.get(f"{url}/api/health/live")
                    break
                except httpx.TransportError:
                    if process.returncode is not None:
                        break
                    await asyncio.sleep(0.2)
            else:
                raise AssertionError("wxcrm serve did not answer within 30 s")
        assert process.returncode is None, "wxcrm serve exited at start-up"
        yield Served(url, process, log_file)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def staff_token(http: httpx.AsyncClient, username: str) -> str:
    response = await http.post(
        "/api/auth/login", json={"username": username, "password": STAFF_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["token"])
