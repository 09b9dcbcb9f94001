"""Outbox drain: N queued notifications delivered to the simulator by one worker.

    .venv/bin/python -m bench.drain [--count 10000] [--database-url URL]

Prints messages per second (target ≥ 1,000/s on the 2-core machine) and how many tokens
were fetched (target 1), and how long an idle worker takes to pick up a new row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
from sqlalchemy import func, select

from bench.common import (
    SIM_APP_ID,
    SIM_SECRET,
    cpu_seconds,
    database_url,
    fresh_database,
    simulator,
)
from wxcrm.core.db import Database
from wxcrm.core.logging import configure_logging
from wxcrm.notifications.models import Notification
from wxcrm.notifications.outbox import Channel, queue_notification
from wxcrm.notifications.subscriptions import grant_credits
from wxcrm.users.models import Role
from wxcrm.users.service import create_user

TEMPLATE = "tmpl-bench"
STARTUP_S = 4.0
OPENID = "o-bench-advisor"


async def seed(database: Database, count: int) -> str:
    async with database.writer() as session:
        advisor = await create_user(
            session,
            username="bench-advisor",
            password="bench-password",
            role=Role.advisor,
            name="顾问",
        )
        advisor.openid = OPENID
        await grant_credits(
            session, advisor_id=advisor.id, openid=OPENID, template_id=TEMPLATE, credits=count + 1
        )
        for n in range(count):
            await queue_notification(
                session,
                event="customer_action",
                channel=Channel.direct,
                advisor_id=advisor.id,
                payload={
                    "template": "customer_action",
                    "values": {
                        "title": "新客户查看了您的简历",
                        "time": "2024-01-01T12:00:00+08:00",
                        "phone": "13800138000",
                        "customer_name": f"客户{n}",
                    },
                    "page": f"pages/customer/detail?id={n}",
                },
            )
        await session.commit()
        return advisor.id


async def unsettled(database: Database) -> int:
    async with database.reader() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.status.in_(["pending", "sending"]))
        )
    return int(count or 0)


def worker_command(url: str, sim_url: str) -> tuple[list[str], dict[str, str]]:
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-secret-key-bench-secret-key",
        "WECHAT_API_BASE": sim_url,
        "WECHAT_APP_ID": SIM_APP_ID,
        "WECHAT_APP_SECRET": SIM_SECRET,
        "WECHAT_TEMPLATE_CUSTOMER_ACTION": TEMPLATE,
        "LOG_LEVEL": "WARNING",
    }
    return [sys.executable, "-m", "wxcrm", "worker"], env


async def main(count: int, url: str, workers: int) -> None:
    database = await fresh_database(url)
    with simulator() as sim:
        async with httpx.AsyncClient(base_url=sim.url) as control:

            async def sends() -> int:
                calls = (await control.get("/sim/stats")).json()["calls"]
                return int(calls.get("subscribe_send", 0))

            await control.post(
                "/sim/subscriptions",
                json={"openid": OPENID, "template_id": TEMPLATE, "count": count + 1},
            )
            command, env = worker_command(url, sim.url)
            processes = [
                subprocess.Popen(command, env={**os.environ, **env}) for _ in range(workers)
            ]
            try:
                await asyncio.sleep(STARTUP_S)  # the workers import, connect and go idle
                # One transaction: every row becomes visible to the workers at its commit.
                advisor_id = await seed(database, count)
                started = time.perf_counter()
                worker_cpu, sim_cpu = (
                    sum(map(cpu_seconds, (p.pid for p in processes))),
                    cpu_seconds(sim.pid),
                )
                # Watch the simulator's count, cheaply: the workers are what is measured.
                while await sends() < count:
                    await asyncio.sleep(0.1)
                while await unsettled(database):
                    await asyncio.sleep(0.02)
                elapsed = time.perf_counter() - started
                worker_cpu = sum(cpu_seconds(p.pid) for p in processes) - worker_cpu
                sim_cpu = cpu_seconds(sim.pid) - sim_cpu

                # Idle workers: how soon is a newly committed row delivered?
                await asyncio.sleep(1.0)
                before = await sends()
                async with database.writer() as session:
                    await queue_notification(
                        session,
                        event="customer_action",
                        channel=Channel.direct,
                        advisor_id=advisor_id,
                        payload={
                            "template": "customer_action",
                            "values": {
                                "title": "t",
                                "time": "12:00",
                                "phone": "1",
                                "customer_name": "x",
                            },
                        },
                    )
                    await session.commit()
                committed = time.perf_counter()
                while await sends() == before:
                    await asyncio.sleep(0.005)
                pickup_ms = (time.perf_counter() - committed) * 1000
            finally:
                for process in processes:
                    process.send_signal(signal.SIGTERM)
                for process in processes:
                    process.wait(timeout=30)
            stats = (await control.get("/sim/stats")).json()
    await database.dispose()
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    print(
        f"drain [{backend}, {workers} worker process{'es' if workers > 1 else ''}]:"
        f" {count} notifications in {elapsed:.2f} s = {count / elapsed:,.0f} msg/s"
        f" (target ≥ 1,000/s); sends at the simulator {stats['calls']['subscribe_send']}"
        f" (expected {count + 1}); token fetches {stats['token_fetches']['stable_token']}"
        f" (target 1); idle pickup {pickup_ms:.0f} ms; CPU per message: workers"
        f" {worker_cpu / count * 1000:.2f} ms, simulator {sim_cpu / count * 1000:.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workers", type=int, default=1, help="wxcrm worker processes")
    arguments = parser.parse_args()
    configure_logging("WARNING", "json")
    with database_url(arguments.database_url) as url:
        asyncio.run(main(arguments.count, url, arguments.workers))
