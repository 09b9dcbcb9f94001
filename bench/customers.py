"""Customer list latency over 100,000 customers, and batch assignment of 10,000.

    .venv/bin/python -m bench.customers [--customers 100000] [--requests 300] [--batch 10000]
        [--runs 3] [--database-url URL]

Seeds the customers with bulk INSERTs into a fresh database (unique valid phones, the
configured lead sources, statuses, categories and levels, owners spread over 20 advisors and
about 15 % in the public pool, created over the past year; on PostgreSQL then VACUUM ANALYZE,
as autovacuum would do), starts one `wxcrm serve` process and then:

- sends `GET /api/customers` one request at a time (one keep-alive connection) for
  each of: the default list (page 1, 20, newest first), page 50, a `contractStatus` filter
  (each status in turn), a name search (two characters of seeded names, a few dozen hits
  each), a phone-prefix search (the first 7 digits of seeded phones), and an advisor's own
  list (as that advisor); prints p50/p95 per query, the CPU per request of the server (and
  of PostgreSQL's backends for this database), how busy the rest of the machine was, and a
  summary (target: list p50 ≤ 20 ms);
- times `POST /api/customers/batch-assign` of `--batch` customers (half from the public
  pool, half from other advisors) to one advisor, end to end over HTTP (target ≤ 2 s),
  `--runs` times with different customers, and checks that the customers moved and that
  each has its history row.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bench.common import (
    cpu_seconds,
    database_url,
    free_port,
    fresh_database,
    machine_busy_seconds,
    named_cpu_seconds,
    percentile,
    started,
)
from wxcrm.core.db import Database
from wxcrm.core.ids import new_id
from wxcrm.core.logging import configure_logging
from wxcrm.core.models import utcnow
from wxcrm.core.security import hash_password
from wxcrm.core.settings import Settings
from wxcrm.customers.models import AssignmentHistory, Customer
from wxcrm.users.models import Role, User
from wxcrm.users.service import create_user

SECRET_KEY = "bench-secret-key-bench-secret-key"
PASSWORD = "bench-password"
MANAGER = "bench-manager"
ADVISORS = 20
POOL_SHARE = 0.15
CHUNK = 5_000
LIST_TARGET_MS = 20.0
BATCH_TARGET_S = 2.0
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红娥玲芬燕彬鹏"


def advisor_name(n: int) -> str:
    return f"bench-advisor-{n:02d}"


@dataclass(frozen=True)
class Seeded:
    advisors: dict[str, str]  # username -> id
    name_terms: tuple[str, ...]  # names to search for (part of some customers' names)
    phone_prefixes: tuple[str, ...]  # the first 7 digits of some customers' phones


async def seed(database: Database, count: int) -> Seeded:
    settings = Settings()
    rng = random.Random(2024)
    async with database.writer() as session:
        await create_user(session, username=MANAGER, password=PASSWORD, role=Role.manager)
        # One hash for all: hashing is slow on purpose, and the password is the same.
        password_hash = hash_password(PASSWORD)
        users = [
            User(
                username=advisor_name(n),
                password_hash=password_hash,
                role=Role.advisor.value,
                name=f"顾问{n:02d}",
            )
            for n in range(ADVISORS)
        ]
        session.add_all(users)
        await session.flush()
        advisors = {user.username: user.id for user in users}
        await session.commit()
    owners = list(advisors.values())
    # Valid mainland mobiles (13…–19…), all different; business numbers likewise.
    phones = rng.sample(range(13 * 10**9, 2 * 10**10), count)
    numbers = rng.sample(range(10**11), count)
    now = utcnow()
    year = int(timedelta(days=365).total_seconds())
    table = Customer.metadata.tables[Customer.__tablename__]
    async with database.writer() as session:
        connection = await session.connection()
        for start in range(0, count, CHUNK):
            rows = []
            for n in range(start, min(count, start + CHUNK)):
                created = now - timedelta(seconds=rng.randrange(year))
                owner = None if rng.random() < POOL_SHARE else rng.choice(owners)
                name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
                rows.append(
                    {
                        "id": new_id(),
                        "customer_no": f"CUS{numbers[n]:011d}",
                        "name": name,
                        "phone": str(phones[n]),
                        "phone_verified": rng.random() < 0.3,
                        "wechat_id": None,
                        "lead_source": rng.choice(settings.lead_sources),
                        "service_category": rng.choice(settings.service_categories),
                        "contract_status": rng.choice(settings.contract_statuses),
                        "lead_level": rng.choice(settings.lead_levels),
                        "address": None,
                        "remark": None,
                        "is_frozen": False,
                        "owner_id": owner,
                        "assigned_at": created if owner else None,
                        "assigned_by_id": None,
                        "created_by_id": owner,
                        "pool_entered_at": None if owner else created,
                        "previous_owner_id": None,
                        "last_follow_up_at": None,
                        "created_at": created,
                        "updated_at": created,
                    }
                )
            # Core executemany on the table: no ORM bookkeeping per row.
            await connection.execute(table.insert(), rows)
        await session.commit()
    if not database.is_sqlite:
        # What autovacuum does soon after such a load (statistics for the planner, the
        # visibility map for index-only scans); this machine's server runs without it.
        # SQLite gets nothing: the service never runs ANALYZE there.
        autocommit = database.engine.execution_options(isolation_level="AUTOCOMMIT")
        async with autocommit.connect() as connection:
            await connection.execute(text("VACUUM ANALYZE customers"))
    picks = rng.sample(range(count), 50)
    async with database.reader() as session:
        names = list(
            await session.scalars(select(Customer.name).where(func.length(Customer.name) == 3))
        )
    terms = {name[:2] for name in rng.sample(names, 50)}
    return Seeded(
        advisors=advisors,
        name_terms=tuple(sorted(terms)),
        phone_prefixes=tuple(str(phones[n])[:7] for n in picks),
    )


@contextmanager
def api_server(url: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """One `wxcrm serve` process over `url` (no delivery worker), and its port."""
    port = free_port()
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "WORKER_EMBEDDED": "false",
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "wxcrm", "serve", "--port", str(port)]
    with started(command, f"http://127.0.0.1:{port}/api/health/live", env) as process:
        yield process, port


def login(base: str, username: str) -> str:
    response = httpx.post(
        f"{base}/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    response.raise_for_status()
    return str(response.json()["data"]["token"])


def postgres_backends(url: str) -> str | None:
    """What the command line of a PostgreSQL backend serving `url`'s database holds."""
    parsed = make_url(url)
    return None if parsed.get_backend_name() == "sqlite" else f" {parsed.database} "


def postgres_cpu(backends: str | None) -> float:
    """CPU time of the PostgreSQL backends serving our database (not other databases')."""
    return 0.0 if backends is None else named_cpu_seconds("postgres", backends)


@dataclass(frozen=True)
class Timed:
    latencies: list[float]  # ms, one per timed request
    failures: int  # answers other than 200
    server_ms: float  # the API process's CPU per request
    postgres_ms: float  # CPU per request of the PostgreSQL backends serving the database
    other_cores: float  # cores busy with anything else, on average, while timing


def timed_gets(
    port: int,
    paths: list[str],
    headers: dict[str, str],
    *,
    count: int,
    warmup: int,
    server_pid: int,
    backends: str | None,
) -> Timed:
    """`count` GETs, one at a time on one keep-alive connection, cycling through `paths`.
    http.client costs the client little next to the server's time."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(path: str) -> int:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status

    for n in range(warmup):
        get(paths[n % len(paths)])

    def sample() -> tuple[float, float, float, float, float]:
        return (
            time.perf_counter(),
            cpu_seconds(server_pid),
            postgres_cpu(backends),
            machine_busy_seconds(),
            time.process_time(),
        )

    latencies, failures = [], 0
    before = sample()
    for n in range(count):
        began = time.perf_counter()
        status = get(paths[n % len(paths)])
        latencies.append((time.perf_counter() - began) * 1000)
        failures += status != 200
    after = sample()
    connection.close()
    wall, server, pg, busy, client = (a - b for a, b in zip(after, before, strict=True))
    return Timed(
        latencies=latencies,
        failures=failures,
        server_ms=server / count * 1000,
        postgres_ms=pg / count * 1000,
        other_cores=max(0.0, (busy - server - pg - client) / wall),
    )


# A label, the headers to send and the paths to cycle through.
Case = tuple[str, dict[str, str], list[str]]


def run_cases(
    title: str,
    cases: list[Case],
    port: int,
    *,
    count: int,
    warmup: int,
    server_pid: int,
    backends: str | None,
) -> dict[str, float]:
    """Times each case (`timed_gets`) and prints a line of figures for it under `title`;
    returns each case's p50 in ms, by label."""
    p50s: dict[str, float] = {}
    for label, headers, paths in cases:
        timed = timed_gets(
            port,
            paths,
            headers,
            count=count,
            warmup=warmup,
            server_pid=server_pid,
            backends=backends,
        )
        p50s[label] = percentile(timed.latencies, 0.5)
        print(
            f"{title} {label}: {len(timed.latencies)} requests,"
            f" p50 {p50s[label]:.1f} ms, p95 {percentile(timed.latencies, 0.95):.1f} ms;"
            f" non-200 {timed.failures}; CPU per request: server {timed.server_ms:.2f} ms"
            + (f", postgres {timed.postgres_ms:.2f} ms" if backends is not None else "")
            + f"; other processes {timed.other_cores:.2f} cores"
        )
    return p50s


async def batch_candidates(database: Database, target: str, size: int) -> list[str]:
    """`size` customers not the target's: half in the pool, half other advisors'."""
    async with database.reader() as session:
        pooled = list(
            await session.scalars(
                select(Customer.id).where(Customer.owner_id.is_(None)).limit(size // 2)
            )
        )
        owned = list(
            await session.scalars(
                select(Customer.id)
                .where(Customer.owner_id.is_not(None), Customer.owner_id != target)
                .limit(size - len(pooled))
            )
        )
    ids = pooled + owned
    random.Random(size).shuffle(ids)
    return ids


async def batch_check(database: Database, ids: list[str], target: str, reason: str) -> str:
    async with database.reader() as session:
        moved = 0
        for start in range(0, len(ids), CHUNK):
            moved += int(
                await session.scalar(
                    select(func.count())
                    .select_from(Customer)
                    .where(Customer.id.in_(ids[start : start + CHUNK]), Customer.owner_id == target)
                )
                or 0
            )
        history = int(
            await session.scalar(
                select(func.count())
                .select_from(AssignmentHistory)
                .where(
                    AssignmentHistory.reason == reason,
                    AssignmentHistory.to_user_id == target,
                    AssignmentHistory.channel == "batch",
                )
            )
            or 0
        )
    return f"customers moved {moved}/{len(ids)}, history rows {history}/{len(ids)}"


async def prepare(url: str, count: int) -> tuple[Seeded, float]:
    database = await fresh_database(url)
    try:
        began = time.perf_counter()
        seeded = await seed(database, count)
        return seeded, time.perf_counter() - began
    finally:
        await database.dispose()


async def batch_runs(
    url: str, base: str, token: str, target: str, size: int, runs: int, server_pid: int
) -> list[str]:
    """Each run: `size` other customers to `target` in one request, timed, then checked."""
    lines = []
    backends = postgres_backends(url)
    database = Database.from_url(url)

    try:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            for run in range(1, runs + 1):
                ids = await batch_candidates(database, target, size)
                reason = f"bench batch {run}"
                body = json.dumps(
                    {"customerIds": ids, "assignedTo": target, "assignmentReason": reason}
                ).encode()
                began, cpu = time.perf_counter(), cpu_seconds(server_pid)
                busy, postgres = machine_busy_seconds(), postgres_cpu(backends)
                response = await client.post(
                    "/api/customers/batch-assign",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                elapsed = time.perf_counter() - began
                cpu = cpu_seconds(server_pid) - cpu
                postgres = postgres_cpu(backends) - postgres
                others = max(0.0, machine_busy_seconds() - busy - cpu - postgres) / elapsed
                data = response.json().get("data") or {}
                check = await batch_check(database, ids, target, reason)
                lines.append(
                    f"run {run}: {len(ids):,} customers in {elapsed:.2f} s"
                    f" (target ≤ {BATCH_TARGET_S:.0f} s); HTTP {response.status_code},"
                    f" success {data.get('success')}, failed {data.get('failed')}; {check};"
                    f" CPU: server {cpu:.2f} s"
                    + (f", postgres {postgres:.2f} s" if not database.is_sqlite else "")
                    + f"; other processes {others:.2f} cores"
                )
    finally:
        await database.dispose()
    return lines


def main(arguments: argparse.Namespace, url: str) -> None:
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    seeded, seed_s = asyncio.run(prepare(url, arguments.customers))
    print(f"customers [{backend}]: seeded {arguments.customers:,} customers in {seed_s:.1f} s")

    backends = postgres_backends(url)
    with api_server(url) as (process, port):
        base = f"http://127.0.0.1:{port}"
        manager = login(base, MANAGER)
        own = advisor_name(0)
        advisor = login(base, own)
        statuses = (Settings()).contract_statuses
        queries: list[tuple[str, str, list[dict[str, str | int]]]] = [
            ("default (page 1, limit 20, newest first)", manager, [{"page": 1, "limit": 20}]),
            ("page 50", manager, [{"page": 50, "limit": 20}]),
            ("contractStatus filter", manager, [{"contractStatus": s} for s in statuses]),
            ("name search", manager, [{"search": term} for term in seeded.name_terms]),
            ("phone-prefix search", manager, [{"search": p} for p in seeded.phone_prefixes]),
            ("advisor's own list", advisor, [{"page": 1, "limit": 20}]),
        ]
        cases: list[Case] = [
            (
                label,
                {"Authorization": f"Bearer {token}", "Accept": "application/json"},
                [f"/api/customers?{urlencode(query)}" for query in asked],
            )
            for label, token, asked in queries
        ]
        p50s = run_cases(
            f"customers [{backend}] list",
            cases,
            port,
            count=arguments.requests,
            warmup=arguments.warmup,
            server_pid=process.pid,
            backends=backends,
        )
        worst = max(p50s, key=lambda label: p50s[label])
        within = sum(1 for p50 in p50s.values() if p50 <= LIST_TARGET_MS)
        print(
            f"customers [{backend}] list summary: p50 ≤ {LIST_TARGET_MS:.0f} ms for {within} of"
            f" {len(p50s)} queries; slowest p50 {p50s[worst]:.1f} ms ({worst});"
            f" default list p50 {p50s[cases[0][0]]:.1f} ms"
        )

        if arguments.batch <= 0:
            return
        target = seeded.advisors[advisor_name(ADVISORS - 1)]
        for entry in asyncio.run(
            batch_runs(url, base, manager, target, arguments.batch, arguments.runs, process.pid)
        ):
            print(f"customers [{backend}] batch-assign {entry}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="timed, per list query")
    parser.add_argument("--warmup", type=int, default=20, help="untimed, per list query")
    parser.add_argument("--batch", type=int, default=10_000, help="0: no batch assignment")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    configure_logging("WARNING", "json")
    with database_url(arguments.database_url) as url:
        main(arguments, url)
