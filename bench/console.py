"""Server time of the console's busiest pages over 100,000 customers.

    .venv/bin/python -m bench.console [--customers 100000] [--requests 200] [--database-url URL]

Seeds the customers as `bench.customers` does (20 advisors, about 15 % in the pool, created over
the past year), gives 50 of them a history (ten follow-ups, two assignments each) and the
outbox 5,000 notifications (sent, failed today, pending), starts one `wxcrm serve` process and
signs in through the console's own form. Then it sends each page one request at a time on one
keep-alive connection, as a signed-in browser would (the session cookie), and prints p50/p95
and the server's CPU per request (and PostgreSQL's, for its backends of this database):

- 首页 for a manager (今日, 近30天) and for an advisor (本月);
- 客户列表: the first page, a filtered list (a status and a level), a search by four digits
  from the middle of phones (contains-search, as staff type a fragment), a name search, a
  search by letters (as of a WeChat id: matched in any case);
- 客户详情 of the 50 customers with a history.

Target: p50 ≤ 50 ms each.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import httpx
from sqlalchemy import select

from bench.common import database_url, fresh_database
from bench.customers import (
    MANAGER,
    PASSWORD,
    Case,
    Seeded,
    advisor_name,
    api_server,
    postgres_backends,
    run_cases,
    seed,
)
from wxcrm.core.db import Database
from wxcrm.core.ids import new_id
from wxcrm.core.logging import configure_logging
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.models import AssignmentHistory, Customer, FollowUp
from wxcrm.notifications.models import Notification

TARGET_MS = 50.0
HISTORIES = 50
NOTIFICATIONS = 5_000
# What staff type of a WeChat id: letters, which a search matches in any case (lower() on
# both sides of LIKE on PostgreSQL, slower than the plain LIKE that digits and Chinese need).
LETTER_TERMS = ("wxid", "Li_Na", "zhang", "mama")


@dataclass(frozen=True)
class Prepared:
    seeded: Seeded
    detail_ids: tuple[str, ...]
    phone_fragments: tuple[str, ...]
    seconds: float


async def history(database: Database, seeded: Seeded) -> tuple[str, ...]:
    """Ten follow-ups and two assignments for 50 owned customers; 5,000 notifications."""
    rng = random.Random(7)
    now = utcnow()
    advisors = list(seeded.advisors.values())
    async with database.writer() as session:
        owned = list(
            await session.execute(
                select(Customer.id, Customer.owner_id)
                .where(Customer.owner_id.is_not(None))
                .limit(HISTORIES)
            )
        )
        for customer_id, owner_id in owned:
            session.add_all(
                FollowUp(
                    id=new_id(),
                    customer_id=customer_id,
                    user_id=owner_id,
                    method=rng.choice(("电话", "微信", "上门")),
                    content=f"第 {n + 1} 次跟进：沟通了服务时间和阿姨要求。",
                    next_follow_up_at=now + timedelta(days=rng.randrange(1, 10)),
                    created_at=now - timedelta(days=30 - n),
                )
                for n in range(10)
            )
            session.add_all(
                AssignmentHistory(
                    id=new_id(),
                    customer_id=customer_id,
                    from_user_id=None,
                    to_user_id=owner_id,
                    by_user_id=None,
                    reason="bench",
                    channel=channel,
                    created_at=now - timedelta(days=40 - n),
                )
                for n, channel in enumerate(("console", "claim"))
            )
        for _ in range(NOTIFICATIONS):
            status = rng.choices(("sent", "failed", "pending"), weights=(90, 5, 5))[0]
            created = now - timedelta(minutes=rng.randrange(60 * 24 * 30))
            session.add(
                Notification(
                    id=new_id(),
                    event="customer_action",
                    channel="wechat",
                    advisor_id=rng.choice(advisors),
                    template_id="bench-template",
                    payload={"customerName": "王女士"},
                    status=status,
                    attempts=1 if status != "pending" else 0,
                    scheduled_at=created,
                    last_errcode=43101 if status == "failed" else None,
                    last_errmsg="user refuse to accept the msg" if status == "failed" else None,
                    sent_at=created if status == "sent" else None,
                    created_at=created,
                )
            )
        await session.commit()
    return tuple(customer_id for customer_id, _ in owned)


async def prepare(url: str, count: int) -> Prepared:
    database = await fresh_database(url)
    try:
        began = time.perf_counter()
        seeded = await seed(database, count)
        detail_ids = await history(database, seeded)
        seconds = time.perf_counter() - began
    finally:
        await database.dispose()
    # Four digits from the middle of a phone, as staff type what they remember of it.
    fragments = tuple(prefix[3:7] for prefix in seeded.phone_prefixes)
    return Prepared(seeded, detail_ids, fragments, seconds)


def console_cookie(base: str, username: str) -> str:
    """Sign in through the console's form, as a browser does; the cookies it set."""
    with httpx.Client(base_url=base, timeout=30) as client:
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token, "no CSRF token on the sign-in page"
        answer = client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
        )
        assert answer.status_code == 303, f"sign-in failed: {answer.status_code}"
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def main(arguments: argparse.Namespace, url: str) -> None:
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    prepared = asyncio.run(prepare(url, arguments.customers))
    print(
        f"console [{backend}]: seeded {arguments.customers:,} customers, {HISTORIES} histories"
        f" and {NOTIFICATIONS:,} notifications in {prepared.seconds:.1f} s"
    )
    settings = Settings()
    backends = postgres_backends(url)
    with api_server(url) as (process, port):
        base = f"http://127.0.0.1:{port}"
        manager = {"Cookie": console_cookie(base, MANAGER), "Accept": "text/html"}
        advisor = {"Cookie": console_cookie(base, advisor_name(0)), "Accept": "text/html"}
        filtered = [
            {"contractStatus": status, "leadLevel": level}
            for status in settings.contract_statuses
            for level in settings.lead_levels
        ]
        cases: list[Case] = [
            ("dashboard 今日 (manager)", manager, ["/?period=today"]),
            ("dashboard 近30天 (manager)", manager, ["/?period=30d"]),
            ("dashboard 本月 (advisor)", advisor, ["/?period=month"]),
            ("list first page (manager)", manager, ["/customers"]),
            ("list filtered by status and level", manager,
             [f"/customers?{urlencode(query)}" for query in filtered]),
            ("list searched by 4 phone digits", manager,
             [f"/customers?{urlencode({'keyword': f})}" for f in prepared.phone_fragments]),
            ("list searched by name", manager,
             [f"/customers?{urlencode({'keyword': t})}" for t in prepared.seeded.name_terms]),
            ("list searched by letters (WeChat id)", manager,
             [f"/customers?{urlencode({'keyword': t})}" for t in LETTER_TERMS]),
            ("detail (10 follow-ups, 2 assignments)", manager,
             [f"/customers/{customer_id}" for customer_id in prepared.detail_ids]),
        ]  # fmt: skip
        p50s = run_cases(
            f"console [{backend}]",
            cases,
            port,
            count=arguments.requests,
            warmup=arguments.warmup,
            server_pid=process.pid,
            backends=backends,
        )
        within = sum(1 for p50 in p50s.values() if p50 <= TARGET_MS)
        worst = max(p50s, key=lambda label: p50s[label])
        print(
            f"console [{backend}] summary: p50 ≤ {TARGET_MS:.0f} ms for {within} of {len(p50s)}"
            f" pages; slowest p50 {p50s[worst]:.1f} ms ({worst})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="timed, per page")
    parser.add_argument("--warmup", type=int, default=10, help="untimed, per page")
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    configure_logging("WARNING", "json")
    with database_url(arguments.database_url) as url:
        main(arguments, url)
