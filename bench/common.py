"""What the benchmarks share: a database to run on, and processes to start and time."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from wxcrm.core.db import Database
from wxcrm.core.migrations import migrate

SIM_APP_ID = "wx0000000000000000"
SIM_SECRET = "sim-app-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def started(
    command: list[str], url: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` as its own process until the block ends, once `url` answers."""
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{command} did not start") from None
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass(frozen=True)
class Simulator:
    url: str
    pid: int


@contextmanager
def simulator() -> Iterator[Simulator]:
    """`wxcrm wechat-sim` in a process of its own, so it does not share our interpreter."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "wxcrm", "wechat-sim", "--port", str(port)]
    with started(command, f"{base}/sim/stats", {"LOG_LEVEL": "WARNING"}) as process:
        yield Simulator(base, process.pid)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def database_url(url: str | None) -> Iterator[str]:
    """The given database, or a fresh SQLite file."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"


async def fresh_database(url: str) -> Database:
    database = Database.from_url(url)
    if not database.is_sqlite:
        async with database.engine.begin() as connection:
            await connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            await connection.exec_driver_sql("CREATE SCHEMA public")
    await migrate(database.engine)
    return database


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(coroutine: object) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]


def named_cpu_seconds(name: str, argument: str | None = None) -> float:
    """CPU time of every process whose command name is `name` (and whose command line
    holds `argument`, if given: PostgreSQL's backends serving one database)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != name:
                    continue
                if argument is not None and argument not in (entry / "cmdline").read_text():
                    continue
                total += cpu_seconds(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # it ended meanwhile
    return total


def machine_busy_seconds() -> float:
    """CPU time the whole machine (all cores) has been busy so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")
