"""A real `wxcrm serve` process under concurrent requests and database faults: requests
never wait on each other for connections, an exhausted pool answers 503 at once, and a
database that refused writes for a while, or lost its file, never leaves the process
broken or acknowledging writes nobody will read."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import BACKENDS, assert_error
from tests.live import create_staff, own_database, served, server_env, staff_token


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def new_customer(n: int) -> dict[str, str]:
    return {"name": f"客户{n}", "phone": f"139{n:08d}"}


async def test_twenty_concurrent_staff_requests_all_answer_with_a_two_connection_pool(
    backend: str, tmp_path: Path
) -> None:
    # Two connections for twenty requests: each request must hold one at a time. A request
    # that held a second (its caller's lookup beside its own) would wait for a connection
    # only another waiting request could free, until the pool timeout: every one a 503.
    async with own_database(backend, tmp_path) as url:
        env = server_env(
            url, tmp_path, DATABASE_POOL_SIZE="2", DATABASE_MAX_OVERFLOW="0",
            DATABASE_POOL_TIMEOUT="10",
        )  # fmt: skip
        await create_staff(env, "advisor1")
        async with (
            served(env, tmp_path) as api,
            httpx.AsyncClient(base_url=api.url, timeout=30) as http,
        ):
            token = await staff_token(http, "advisor1")
            auth = {"Authorization": f"Bearer {token}"}
            answers = await asyncio.gather(
                *(http.get("/api/customers", params={"limit": 5}, headers=auth) for _ in range(20)),
                *(http.get("/api/customers/public-pool", headers=auth) for _ in range(10)),
                *(http.get("/api/auth/me", headers=auth) for _ in range(10)),
            )
            assert [a.status_code for a in answers] == [200] * 40, answers[0].text


@asynccontextmanager
async def writes_blocked(backend: str, url: str, db_file: Path) -> AsyncIterator[None]:
    """Another client holds the lock writers of customers need, until the block ends."""
    if backend == "sqlite":
        holder = sqlite3.connect(db_file, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await transaction.rollback()
        await connection.close()


async def test_an_exhausted_pool_answers_503_at_once_and_recovers(
    backend: str, tmp_path: Path
) -> None:
    async with own_database(backend, tmp_path) as url:
        env = server_env(
            url, tmp_path, DATABASE_POOL_SIZE="2", DATABASE_MAX_OVERFLOW="0",
            DATABASE_POOL_TIMEOUT="0.5",
        )  # fmt: skip
        await create_staff(env, "boss", role="admin")
        async with (
            served(env, tmp_path) as api,
            httpx.AsyncClient(base_url=api.url, timeout=60) as http,
        ):
            auth = {"Authorization": f"Bearer {await staff_token(http, 'boss')}"}
            async with writes_blocked(backend, url, tmp_path / "wxcrm.db"):
                # Two writers wait on the lock, each holding one of the two connections.
                stuck = [
                    asyncio.create_task(
                        http.post("/api/customers", json=new_customer(n), headers=auth)
                    )
                    for n in range(2)
                ]
                await asyncio.sleep(1.0)
                assert not any(task.done() for task in stuck)
                refused = await http.get("/api/customers", headers=auth)
                body = assert_error(refused, 503, "SERVICE_UNAVAILABLE")
                assert refused.headers["retry-after"] == "1"
                assert "繁忙" in body["message"]
            # The lock gone, the waiting writers finish and the pool serves again.
            assert [(await task).status_code for task in stuck] == [200, 200]
            listed = await http.get("/api/customers", headers=auth)
            assert listed.status_code == 200
            assert listed.json()["data"]["total"] == 2


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """The file refuses writes, even root's (chmod would not stop root)."""
    subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True, capture_output=True)


def chattr_works(folder: Path) -> bool:
    probe = folder / "probe"
    probe.touch()
    try:
        with immutable(probe):
            return True
    except (OSError, subprocess.CalledProcessError):
        return False


async def test_a_database_briefly_read_only_leaves_no_broken_connection(tmp_path: Path) -> None:
    if shutil.which("chattr") is None or not chattr_works(tmp_path):
        pytest.skip("needs chattr (root on ext4 or xfs) to make the database read-only")
    async with own_database("sqlite", tmp_path) as url:
        env = server_env(url, tmp_path, DATABASE_POOL_SIZE="8", DATABASE_MAX_OVERFLOW="4")
        await create_staff(env, "boss", role="admin")
        async with (
            served(env, tmp_path) as api,
            httpx.AsyncClient(base_url=api.url, timeout=60) as http,
        ):
            auth = {"Authorization": f"Bearer {await staff_token(http, 'boss')}"}
            with immutable(tmp_path / "wxcrm.db"):
                # Concurrent writers make the pool open connections while the file is
                # read-only: SQLite opens those read-only, and they stay so.
                during = await asyncio.gather(
                    *(
                        http.post("/api/customers", json=new_customer(n), headers=auth)
                        for n in range(12)
                    )
                )
                # Those through a connection opened now fail: the fault is real.
                assert {a.status_code for a in during} == {200, 503}
            after = []
            for start in range(100, 160, 12):
                after += await asyncio.gather(
                    *(
                        http.post("/api/customers", json=new_customer(n), headers=auth)
                        for n in range(start, start + 12)
                    )
                )
            assert [a.status_code for a in after if a.status_code >= 500] == []
            health = await http.get("/api/health")
            assert health.status_code == 200, health.text


async def test_a_deleted_database_file_fails_writes_loudly(tmp_path: Path) -> None:
    async with own_database("sqlite", tmp_path) as url:
        env = server_env(url, tmp_path)
        await create_staff(env, "boss", role="admin")
        async with (
            served(env, tmp_path) as api,
            httpx.AsyncClient(base_url=api.url, timeout=30) as http,
        ):
            auth = {"Authorization": f"Bearer {await staff_token(http, 'boss')}"}
            first = await http.post("/api/customers", json=new_customer(1), headers=auth)
            assert first.status_code == 200, first.text
            for suffix in ("", "-wal", "-shm"):
                (tmp_path / f"wxcrm.db{suffix}").unlink(missing_ok=True)
            # Pooled connections still hold the deleted file open: a write through one
            # would succeed into a file nobody will ever read again.
            for n in range(2, 8):
                lost = await http.post("/api/customers", json=new_customer(n), headers=auth)
                assert lost.status_code == 503, lost.text
            assert_error(await http.get("/api/health"), 503, "SERVICE_UNAVAILABLE")
            assert not (tmp_path / "wxcrm.db").exists()  # no empty database made in its place


async def test_the_database_file_and_folder_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"sqlite+aiosqlite:///{data / 'wxcrm.db'}"
    async with served(server_env(url, data), tmp_path) as api, httpx.AsyncClient() as http:
        assert (await http.get(f"{api.url}/api/health")).status_code == 200
    assert (data.stat().st_mode & 0o777) == 0o700
    assert ((data / "wxcrm.db").stat().st_mode & 0o777) == 0o600
    assert os.access(data / "wxcrm.db", os.R_OK)
