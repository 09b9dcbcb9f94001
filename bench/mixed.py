"""A busy office and a busy mini program at once, against one API process.

    .venv/bin/python -m bench.mixed [--seconds 30] [--warmup 3] [--staff 100] [--actions 64]
        [--database-url URL]

Seeds what bench/actions.py seeds (advisors with credits, 5,000 customers, 10,000
mini-program users), moves a fifth of the customers into the public pool, and starts the
WeChat simulator and one `wxcrm serve` with its defaults (pool sizes included; the embedded
delivery worker sends during the run). Then, at the same time and for the same window:

- `--staff` connections of staff (four advisors and a manager, each with its own token),
  each request one of: the customer list (page 1–5, a third with a search), a customer's
  detail, the public pool;
- `--actions` connections of mini-program customers posting `POST /api/customer/action`
  (bench/actions.py's mix), through a trusted proxy that names each customer's address.

Prints per side: requests/s, p50/p99/max latency, answers by status, and what the issue
asks of it: no 5xx, no request slower than 5 s (each request's deadline is 60 s; one not
answered by then counts as a transport error). Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import select, update

from bench.actions import (
    MIX,
    OPENIDS,
    SECRET_KEY,
    ActionRequests,
    grant_at_simulator,
    openid,
    prepare,
    server,
)
from bench.common import database_url, simulator
from bench.load import Requests, Result, measure, request_bytes
from wxcrm.core.db import Database
from wxcrm.core.logging import configure_logging
from wxcrm.core.models import utcnow
from wxcrm.core.security import create_token
from wxcrm.customers.models import Customer
from wxcrm.users.models import Role, User

HANG_S = 5.0
SEARCHES = ("客户", "138000", "CUS", "王")


@dataclass(frozen=True)
class StaffRequests:
    """The i-th staff request: list, detail or pool, by one of the staff."""

    host: str
    tokens: tuple[str, ...]
    visible: tuple[tuple[str, ...], ...]  # per token: ids of customers it may open

    def __call__(self, i: int) -> bytes:
        who = i % len(self.tokens)
        turn = i // len(self.tokens)  # each person's own sequence: list, detail, pool, …
        kind = turn % 3
        if kind == 0:
            path = f"/api/customers?page={turn // 3 % 5 + 1}&limit=20"
            if turn // 3 % 3 == 0:
                path += f"&search={quote(SEARCHES[i % 4])}"
        elif kind == 1:
            ids = self.visible[who]
            path = f"/api/customers/{ids[(i * 7_919) % len(ids)]}"
        else:
            path = f"/api/customers/public-pool?page={i % 3 + 1}&limit=20"
        return request_bytes(
            "GET", path, self.host, {"Authorization": f"Bearer {self.tokens[who]}"}
        )


async def staff_and_customers(url: str) -> tuple[list[str], list[tuple[str, ...]]]:
    """Tokens' subjects (advisors, then a manager) and the customers each may open; a fifth
    of the customers moved to the public pool."""
    database = Database.from_url(url)
    try:
        async with database.writer() as session:
            advisors = list(
                (
                    await session.scalars(
                        select(User.id).where(User.role == Role.advisor.value).order_by(User.id)
                    )
                ).all()
            )
            pooled = list((await session.scalars(select(Customer.id).order_by(Customer.id))).all())[
                ::5
            ]
            await session.execute(
                update(Customer)
                .where(Customer.id.in_(pooled))
                .values(owner_id=None, assigned_at=None, pool_entered_at=utcnow())
            )
            manager = User(
                username="bench-manager", password_hash="!", role=Role.manager.value, name="经理"
            )
            session.add(manager)
            await session.flush()
            visible = []
            for advisor in advisors:
                ids = await session.scalars(select(Customer.id).where(Customer.owner_id == advisor))
                visible.append(tuple(ids.all()))
            everyone = await session.scalars(select(Customer.id))
            visible.append(tuple(everyone.all()))
            await session.commit()
            return [*advisors, manager.id], visible
    finally:
        await database.dispose()


def report(label: str, result: Result) -> str:
    slow = sum(1 for latency in result.latencies if latency > HANG_S)
    statuses = ", ".join(f"{s or 'transport'}: {n}" for s, n in sorted(result.statuses.items()))
    server_errors = sum(n for s, n in result.statuses.items() if s >= 500 or s == 0)
    return (
        f"mixed {label}: {result.connections} connections, {result.seconds:.0f} s:"
        f" {result.rate:,.0f} req/s, p50 {result.percentile_ms(0.5):.1f} ms,"
        f" p99 {result.percentile_ms(0.99):.1f} ms,"
        f" max {max(result.latencies, default=0) * 1000:.0f} ms; answers {statuses};"
        f" 5xx or no answer {server_errors}; slower than {HANG_S:.0f} s {slow}"
    )


def main(arguments: argparse.Namespace, url: str) -> None:
    advisors = asyncio.run(prepare(url))
    subjects, visible = asyncio.run(staff_and_customers(url))
    lifetime = timedelta(days=1)
    staff_tokens = tuple(create_token(SECRET_KEY, s, "staff", lifetime) for s in subjects)
    customer_tokens = tuple(
        create_token(SECRET_KEY, openid(n), "miniprogram", lifetime) for n in range(OPENIDS)
    )
    pattern = [kind for kind, share in MIX.items() for _ in range(share)]
    random.Random(7).shuffle(pattern)
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    with tempfile.TemporaryDirectory() as folder, simulator() as sim:
        grant_at_simulator(sim.url, advisors)
        log = Path(folder) / "server.log"
        with server(url, sim.url, log, None) as (port, process):
            host = f"127.0.0.1:{port}"

            def drive(requests: Requests, connections: int) -> Result:
                return measure(
                    "127.0.0.1",
                    port,
                    requests,
                    connections=connections,
                    warmup=arguments.warmup,
                    seconds=arguments.seconds,
                    watch=(process.pid,),
                )

            staff = StaffRequests(host, staff_tokens, tuple(visible))
            actions = ActionRequests(
                host, tuple(a for a, _ in advisors), customer_tokens, tuple(pattern)
            )
            with ThreadPoolExecutor(max_workers=2) as both:
                staff_run = both.submit(drive, staff, arguments.staff)
                action_run = both.submit(drive, actions, arguments.actions)
                staff_result, action_result = staff_run.result(), action_run.result()
            health = httpx.get(f"http://{host}/api/health", timeout=10)
        server_log = log.read_text(errors="replace").splitlines()
    print(f"mixed [{backend}] one API process, {os.cpu_count()} cores, default pool sizes")
    print(report(f"[{backend}] staff (list, detail, pool)", staff_result))
    print(report(f"[{backend}] POST /api/customer/action", action_result))
    print(
        f"mixed [{backend}] health after the run: {health.status_code};"
        f" server CPU {staff_result.cpu[process.pid]:.1f} s over the window;"
        f" server log lines {len(server_log)}"
    )
    for result in (staff_result, action_result):
        for error in result.errors:
            print(f"  client error: {error}")
    for entry in server_log[:5]:
        print(f"  server log: {entry[:300]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--staff", type=int, default=100, help="staff connections")
    parser.add_argument("--actions", type=int, default=64, help="mini-program connections")
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    configure_logging("WARNING", "json")
    with database_url(arguments.database_url) as url:
        main(arguments, url)
