"""Scale-out: two API processes and two delivery workers on one PostgreSQL database, one of
each killed with SIGKILL half way through the load.

    .venv/bin/python -m bench.scaleout --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/wxcrm_scaleout
        [--seconds 30] [--concurrency 16] [--send-delay-ms 2000]
        [--redis-url redis://127.0.0.1:6379/0] [--timeout 240]

Makes the database the URL names afresh on its server (dropping one of that name first),
migrates it once and seeds advisors (bound openids; credits for both templates here and at
the simulator), a manager, 1,500 customers of known mini-program users and 400 customers in
the public pool; drops it at the end. Starts the WeChat simulator, two `wxcrm serve`
processes (WORKER_EMBEDDED=false) and two `wxcrm worker` processes with one environment:
rate limits counted in Redis under a key prefix of this run, and WORKER_STALE_SECONDS=5,
WORKER_HEARTBEAT_SECONDS=1 so that the killed worker's rows go to the other within the run.

Before the load, with both API processes up: one openid sends 30 actions alternating between
them under RATE_LIMIT_ACTION_PER_OPENID=20/minute (20 accepted in all, then 429); ten wrong
passwords for one username alternate under RATE_LIMIT_LOGIN_FAILURES_PER_USERNAME=5/5minutes
(5 refused as wrong, then 429, the right password too); the staff mini program's create with
one Idempotency-Key goes to each process, one after the other and both at once.

Then for --seconds, --concurrency requests in flight, round robin over the API processes
still up: mini-program customers log in (a simulator login code, `POST /api/wechat/openid`)
and send actions (new leads, their own seeded customer, a few without a phone); three
advisors list, open and follow up their customers; the manager assigns pool customers and
follows up. Half way, one API process and one worker get SIGKILL. From a second before,
the simulator holds its answers to sends for --send-delay-ms (2 s), so that the worker dies
with deliveries in flight, as a busy one would: the simulator records none of them (a caller
that goes away cancels its call), and the other worker sends them once the dead one's claim
is stale. A message is delivered twice only when the worker dies between WeChat's answer and
writing it down.

Then it waits (at most 120 s) until no notification is pending or sending, scrapes the
surviving API process's /metrics (every process counts into one PROMETHEUS_MULTIPROC_DIR),
prints a table (requests per process, throughput, errors by kind, acknowledged writes
against the database, notifications queued and delivered once, twice or never, token
fetches, the scraped counters) and exits 1 naming each failed check: an acknowledged write
missing, a notification not delivered, a message for no notification, more than one token
fetch, a limit not counted across the processes, an idempotent create done twice, /metrics
not counting the killed processes. Notifications delivered twice are reported, not failed.
The processes' logs are in a temporary folder, kept when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import inspect
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from limits.storage import storage_from_string
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench.actions import SECRET_KEY, customer_address
from bench.common import (
    SIM_APP_ID,
    SIM_SECRET,
    cpu_seconds,
    free_port,
    fresh_database,
    machine_busy_seconds,
    named_cpu_seconds,
    percentile,
    simulator,
)
from bench.drain import unsettled
from wxcrm.core.db import Database
from wxcrm.core.logging import configure_logging
from wxcrm.core.models import utcnow
from wxcrm.customers.leads import WantedLead, create_or_link_leads
from wxcrm.customers.models import AssignmentHistory, Customer, CustomerAction, FollowUp
from wxcrm.notifications.models import Notification, NotificationAttempt
from wxcrm.notifications.subscriptions import grant_credits
from wxcrm.users.models import Role, User
from wxcrm.users.service import create_user
from wxcrm.wechat.sim.control import SimControl

ACTION_TEMPLATE = "tmpl-scaleout-action"
ASSIGN_TEMPLATE = "tmpl-scaleout-assigned"
TEMPLATES = (ACTION_TEMPLATE, ASSIGN_TEMPLATE)
CUSTOMER_PAGE = "pages/customer/detail"
PASSWORD = "scaleout-password"
CREDITS = 10**9
ADVISORS = 6
STAFF_ADVISORS = 3  # advisors who also work in the console during the load
KNOWN_CUSTOMERS = 1_500
POOL_CUSTOMERS = 400
SEED_CHUNK = 500  # leads per statement: PostgreSQL takes at most 32,767 parameters
ACTIONS_PER_CUSTOMER = 5  # well under the per-openid limit below
ACTION_TYPES = ("view_resume", "contact_advisor", "book_service")

ACTION_LIMIT = 20
ACTION_LIMIT_SPEC = f"{ACTION_LIMIT}/minute"
ACTION_LIMIT_TRIES = 30  # counted per process, each would accept its 15
LOGIN_LIMIT = 5
LOGIN_LIMIT_SPEC = f"{LOGIN_LIMIT}/5minutes"
LOGIN_LIMIT_TRIES = 10
LOCKOUT_USER = "scaleout-lockout"
LIMIT_OPENID = "o-scaleout-limit"

STALE_S = 5
HEARTBEAT_S = 1
SETTLE_S = 120.0
REQUEST_TIMEOUT_S = 15.0
# The first process compiles its imports (no bytecode is cached in the checkout): tens of
# seconds on two busy cores.
START_TIMEOUT_S = 120.0
WORKER_WARMUP_S = 3.0
HOLD_BEFORE_KILL_S = 1.0
HELD_SENDS = 40

# Phone prefixes, one per kind of customer, so that no two kinds meet.
NEW_PREFIX, KNOWN_PREFIX, POOL_PREFIX, IDEMPOTENT_PREFIX, LIMIT_PREFIX = (
    "139",
    "138",
    "137",
    "136",
    "135",
)


def known_openid(n: int) -> str:
    return f"o-scaleout-known-{n:05d}"


def phone(prefix: str, n: int) -> str:
    return f"{prefix}{n:08d}"


# -- the database ----------------------------------------------------------------------------------


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def recreate_database(url: str, *, create: bool) -> None:
    """Drop the URL's database (its connections too) and, with `create`, make it again."""
    parsed = make_url(url)
    name = parsed.database
    engine = create_async_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(
                f"DROP DATABASE IF EXISTS {quoted(name or '')} WITH (FORCE)"
            )
            if create:
                await connection.exec_driver_sql(f"CREATE DATABASE {quoted(name or '')}")
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Seeded:
    advisors: tuple[tuple[str, str], ...]  # (id, bound openid)
    manager_id: str
    pool: tuple[str, ...]  # ids of the public pool's customers


async def seed(database: Database) -> Seeded:
    async with database.writer() as session:
        advisors: list[tuple[str, str]] = []
        for a in range(ADVISORS):
            advisor = await create_user(
                session,
                username=f"scaleout-advisor-{a}",
                password=PASSWORD,
                role=Role.advisor,
                name=f"顾问{a}",
            )
            advisor.openid = f"o-scaleout-advisor-{a}"
            for template in TEMPLATES:
                await grant_credits(
                    session,
                    advisor_id=advisor.id,
                    openid=advisor.openid,
                    template_id=template,
                    credits=CREDITS,
                )
            advisors.append((advisor.id, advisor.openid))
        manager = await create_user(
            session, username="scaleout-manager", password=PASSWORD, role=Role.manager, name="经理"
        )
        await create_user(
            session, username=LOCKOUT_USER, password=PASSWORD, role=Role.advisor, name="锁定"
        )
        # A known customer belongs to the mini-program user who made it and to one advisor,
        # the one that user acts towards in the load.
        wanted = [
            WantedLead(
                phone=phone(KNOWN_PREFIX, n),
                name=f"老客户{n}",
                openid=known_openid(n),
                advisor_id=advisors[n % ADVISORS][0],
                remark="scaleout: seeded",
                verified=False,
            )
            for n in range(KNOWN_CUSTOMERS)
        ] + [
            WantedLead(
                phone=phone(POOL_PREFIX, n),
                name=f"公海客户{n}",
                openid=f"o-scaleout-pool-{n:05d}",
                advisor_id=advisors[0][0],
                remark="scaleout: seeded",
                verified=False,
            )
            for n in range(POOL_CUSTOMERS)
        ]
        made = []
        for start in range(0, len(wanted), SEED_CHUNK):
            made += await create_or_link_leads(session, wanted[start : start + SEED_CHUNK])
        pool = tuple(lead.customer.id for lead in made[KNOWN_CUSTOMERS:])
        await session.execute(
            update(Customer)
            .where(Customer.id.in_(pool))
            .values(owner_id=None, assigned_at=None, pool_entered_at=utcnow())
        )
        await session.commit()
        return Seeded(tuple(advisors), manager.id, pool)


async def prepare(url: str) -> Seeded:
    """Migrated once, here, before any process starts; then seeded."""
    database = await fresh_database(url)
    try:
        return await seed(database)
    finally:
        await database.dispose()


async def prepare_simulator(sim_url: str, seeded: Seeded) -> None:
    """WeChat's side: the templates and the page exist, and each advisor accepted enough."""
    async with SimControl(sim_url) as control:
        for template in TEMPLATES:
            await control.register_template(template)
        await control.register_page(CUSTOMER_PAGE)
        for _, advisor_openid in seeded.advisors:
            for template in TEMPLATES:
                await control.grant(advisor_openid, template, CREDITS)


async def rate_limit_counts(redis_url: str, prefix: str, *, forget: bool) -> bool:
    """Whether Redis answers, through the library the app counts with; with `forget`, this
    run's counts are deleted (every key under its prefix)."""
    storage: Any = storage_from_string(f"async+{redis_url}", key_prefix=prefix)
    outcome = storage.reset() if forget else storage.check()
    answer = await outcome if inspect.isawaitable(outcome) else outcome
    return forget or bool(answer)


# -- the processes ---------------------------------------------------------------------------------


def _die_with_us() -> None:
    # PR_SET_PDEATHSIG: should this process be killed outright, its children go too.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, characters: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-characters:]


@dataclass
class Children:
    """The processes this run started, each writing to its own log; all stopped at the end.

    Their bytecode is cached in `cache`, a folder of this run (PYTHONPYCACHEPREFIX), even
    where PYTHONDONTWRITEBYTECODE is set: the first process compiles the imports and the
    others read them, instead of four compiling at once on two cores for most of a minute.
    Nothing is written into the checkout.
    """

    folder: Path
    cache: Path
    started: list[Child] = field(default_factory=list)

    def start(
        self, name: str, arguments: list[str], env: dict[str, str], port: int | None
    ) -> Child:
        log = self.folder / f"{name}.log"
        inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "wxcrm", *arguments],
                env={**inherited, "PYTHONPYCACHEPREFIX": str(self.cache), **env},
                cwd=self.folder,  # anything a process writes beside it stays out of the checkout
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_us,
            )
        child = Child(name, process, log, port)
        self.started.append(child)
        return child

    def wait_ready(self, apis: Sequence[Child], workers: Sequence[Child], deadline: float) -> None:
        began = time.monotonic()
        deadline = min(deadline, began + START_TIMEOUT_S)
        for api in apis:
            while True:
                try:
                    if httpx.get(
                        f"http://127.0.0.1:{api.port}/api/health/live", timeout=1
                    ).is_success:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or api.process.poll() is not None:
                    raise RuntimeError(
                        f"{api.name} did not answer within {time.monotonic() - began:.0f} s"
                        f" (exit code {api.process.poll()}):\n{api.tail()}"
                    )
                time.sleep(0.1)
        # A worker has no port to ask: it has had the APIs' start-up time and a little more
        # to import and connect, and must still be running.
        if workers:
            time.sleep(WORKER_WARMUP_S)
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(f"{worker.name} stopped:\n{worker.tail()}")

    def stop(self) -> None:
        running = [c for c in self.started if c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        for child in running:
            try:
                child.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(timeout=10)


def environment(
    url: str, sim_url: str, redis_url: str, prefix: str, metrics_dir: Path
) -> dict[str, str]:
    """One environment for every process: what makes them one deployment."""
    return {
        "DATABASE_URL": url,
        # Every process counts into one directory; either API process's /metrics sums them.
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SECRET_KEY": SECRET_KEY,  # staff and customer tokens work on either API process
        "WECHAT_API_BASE": sim_url,
        "WECHAT_APP_ID": SIM_APP_ID,
        "WECHAT_APP_SECRET": SIM_SECRET,
        "WECHAT_TEMPLATE_CUSTOMER_ACTION": ACTION_TEMPLATE,
        "WECHAT_TEMPLATE_CUSTOMER_ASSIGNED": ASSIGN_TEMPLATE,
        "WORKER_EMBEDDED": "false",
        "WORKER_STALE_SECONDS": str(STALE_S),
        "WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT_S),
        "RATE_LIMIT_STORAGE_URL": redis_url,
        "RATE_LIMIT_KEY_PREFIX": prefix,
        "RATE_LIMIT_ACTION_PER_OPENID": ACTION_LIMIT_SPEC,
        "RATE_LIMIT_LOGIN_FAILURES_PER_USERNAME": LOGIN_LIMIT_SPEC,
        # Each customer comes with an address of its own (X-Forwarded-For from loopback),
        # so the per-address limits count customers, not this one client.
        "TRUSTED_PROXIES": '["127.0.0.1"]',
        "LOG_LEVEL": "WARNING",
    }


# Fewer connections for the workers: four processes stay well inside PostgreSQL's 100.
WORKER_POOL = {"DATABASE_POOL_SIZE": "4", "DATABASE_MAX_OVERFLOW": "6"}


# -- requests --------------------------------------------------------------------------------------


@dataclass
class Traffic:
    """Every request sent, by API port and by kind, and what came of it."""

    sent: Counter[int] = field(default_factory=Counter)
    answered: Counter[int] = field(default_factory=Counter)
    statuses: Counter[tuple[int, int]] = field(default_factory=Counter)
    errors: Counter[tuple[int, str]] = field(default_factory=Counter)
    kinds: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)  # answered, by kind
    in_flight: Counter[int] = field(default_factory=Counter)

    async def call(
        self,
        client: httpx.AsyncClient,
        kind: str,
        port: int,
        method: str,
        path: str,
        **options: Any,
    ) -> httpx.Response | None:
        """The answer, or None when none came (refused, reset, timed out)."""
        self.sent[port] += 1
        self.in_flight[port] += 1
        began = time.perf_counter()
        try:
            response = await client.request(method, f"http://127.0.0.1:{port}{path}", **options)
        except httpx.HTTPError as error:
            self.errors[(port, type(error).__name__)] += 1
            self.kinds[(kind, type(error).__name__)] += 1
            return None
        finally:
            self.in_flight[port] -= 1
        self.latencies.setdefault(kind, []).append(time.perf_counter() - began)
        self.answered[port] += 1
        self.statuses[(port, response.status_code)] += 1
        self.kinds[(kind, str(response.status_code))] += 1
        return response


def data_of(response: httpx.Response | None) -> Any:
    """The envelope's `data` of a successful answer, else None."""
    if response is None or not response.is_success:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("data") if isinstance(body, dict) and body.get("success") else None


class Balancer:
    """Round robin over the API processes still up, as a load balancer would."""

    def __init__(self, ports: Sequence[int]) -> None:
        self.up = list(ports)
        self._turn = 0

    def next(self) -> int:
        port = self.up[self._turn % len(self.up)]
        self._turn += 1
        return port

    def down(self, port: int) -> None:
        self.up.remove(port)


@dataclass
class Acks:
    """Writes an API process acknowledged: each must be in the database afterwards."""

    actions: dict[str, tuple[str, int]] = field(default_factory=dict)  # id → (openid, seq)
    follow_ups: dict[str, str] = field(default_factory=dict)  # id → content
    assignments: dict[str, str] = field(default_factory=dict)  # customer id → advisor id


@dataclass(frozen=True)
class MiniUser:
    """A mini-program customer of the load: who, towards which advisor, with which phone."""

    n: int
    openid: str
    advisor_id: str
    phone: str | None
    name: str


@dataclass
class Load:
    client: httpx.AsyncClient
    control: SimControl
    balancer: Balancer
    seeded: Seeded
    run_id: str
    traffic: Traffic = field(default_factory=Traffic)
    acks: Acks = field(default_factory=Acks)
    ends_at: float = 0.0
    customers: int = 0
    sequence: int = 0
    pool_taken: int = 0

    def running(self) -> bool:
        return time.monotonic() < self.ends_at

    def next_seq(self) -> int:
        self.sequence += 1
        return self.sequence

    def next_customer(self) -> MiniUser:
        n = self.customers
        self.customers += 1
        advisors = self.seeded.advisors
        if n < ADVISORS:
            # Without a phone the message names no customer: one such user per advisor keeps
            # every message traceable to its notification (see `match`).
            return MiniUser(n, f"o-scaleout-{n:07d}", advisors[n][0], None, "")
        known = n // 3
        if n % 3 == 2 and known < KNOWN_CUSTOMERS:
            advisor = advisors[known % ADVISORS][0]
            return MiniUser(n, known_openid(known), advisor, phone(KNOWN_PREFIX, known), "")
        return MiniUser(
            n, f"o-scaleout-{n:07d}", advisors[n % ADVISORS][0], phone(NEW_PREFIX, n), f"客户{n}"
        )

    async def login(self, user: MiniUser, port: int | None = None) -> str | None:
        """The customer's session token, as the mini program gets it (None if it failed)."""
        code = await self.control.mint_login_code(user.openid)
        answer = await self.traffic.call(
            self.client,
            "mini-program login",
            port or self.balancer.next(),
            "POST",
            "/api/wechat/openid",
            json={"code": code},
            headers={"X-Forwarded-For": customer_address(user.n)},
        )
        data = data_of(answer)
        return str(data["token"]) if data else None

    async def act(self, user: MiniUser, token: str, port: int | None = None) -> int | None:
        """One action; returns the status (None: no answer), keeping an acknowledged id."""
        seq = self.next_seq()
        body: dict[str, Any] = {
            "customerId": user.openid,
            "advisorId": user.advisor_id,
            "actionType": ACTION_TYPES[seq % len(ACTION_TYPES)],
            # Unique per request: the stored row must be this very request's.
            "actionData": {"resumeId": f"R{user.n % 97:04d}", "run": self.run_id, "seq": seq},
        }
        if user.phone:
            body["customerPhone"] = user.phone
        if user.name:
            body["customerName"] = user.name
        answer = await self.traffic.call(
            self.client,
            "customer action",
            port or self.balancer.next(),
            "POST",
            "/api/customer/action",
            json=body,
            headers={
                "Authorization": f"Bearer {token}",
                "X-Forwarded-For": customer_address(user.n),
            },
        )
        data = data_of(answer)
        if data and data.get("actionId"):
            self.acks.actions[str(data["actionId"])] = (user.openid, seq)
        return answer.status_code if answer is not None else None

    async def staff_login(self, username: str) -> str | None:
        answer = await self.traffic.call(
            self.client,
            "staff login",
            self.balancer.next(),
            "POST",
            "/api/auth/login",
            json={"username": username, "password": PASSWORD},
        )
        data = data_of(answer)
        return str(data["token"]) if data else None

    async def staff(self, kind: str, method: str, path: str, token: str, **options: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        answer = await self.traffic.call(
            self.client, kind, self.balancer.next(), method, path, headers=headers, **options
        )
        return data_of(answer)

    async def follow_up(self, token: str, customer_id: str, who: str, n: int) -> None:
        content = f"scaleout {self.run_id} {who} 电话回访 #{n}"
        data = await self.staff(
            "follow-up",
            "POST",
            f"/api/customers/{customer_id}/follow-ups",
            token,
            json={"method": "电话", "content": content},
        )
        if data and data.get("_id"):
            self.acks.follow_ups[str(data["_id"])] = content


async def customer_lane(load: Load) -> None:
    """Customers one after the other: log in, then a few actions each."""
    while load.running():
        user = load.next_customer()
        token = await load.login(user)
        if token is None:
            continue
        for _ in range(ACTIONS_PER_CUSTOMER):
            if not load.running():
                return
            await load.act(user, token)


async def advisor_lane(load: Load, username: str) -> None:
    """An advisor in the console: a page of its customers, one of them, a follow-up."""
    token: str | None = None
    n = 0
    while load.running():
        if token is None:
            token = await load.staff_login(username)
            if token is None:
                await asyncio.sleep(0.2)  # its process just died: the next try goes elsewhere
            continue
        n += 1
        listing = await load.staff(
            "customer list", "GET", f"/api/customers?page={n % 3 + 1}&limit=20", token
        )
        items = listing["items"] if listing else []
        if not items or not load.running():
            continue
        customer_id = str(items[n % len(items)]["_id"])
        await load.staff("customer detail", "GET", f"/api/customers/{customer_id}", token)
        if load.running():
            await load.follow_up(token, customer_id, username, n)


async def manager_lane(load: Load) -> None:
    """The manager: the list, a pool customer assigned to an advisor, a follow-up on it."""
    token: str | None = None
    n = 0
    advisors = load.seeded.advisors
    while load.running():
        if token is None:
            token = await load.staff_login("scaleout-manager")
            if token is None:
                await asyncio.sleep(0.2)
            continue
        n += 1
        await load.staff("customer list", "GET", f"/api/customers?page={n % 5 + 1}&limit=20", token)
        if load.pool_taken >= len(load.seeded.pool) or not load.running():
            continue
        customer_id = load.seeded.pool[load.pool_taken]
        load.pool_taken += 1  # each pool customer is assigned once: one message per customer
        advisor_id = advisors[n % ADVISORS][0]
        assigned = await load.staff(
            "assignment",
            "PATCH",
            f"/api/customers/{customer_id}/assign",
            token,
            json={"assignedTo": advisor_id, "assignmentReason": f"scaleout 分配 #{n}"},
        )
        if assigned is not None:
            load.acks.assignments[customer_id] = advisor_id
        if load.running():
            await load.follow_up(token, customer_id, "manager", n)


# -- checks before the load: shared limits and idempotency keys ------------------------------------


@dataclass
class SharedState:
    action_accepted: Counter[int] = field(default_factory=Counter)  # by port
    action_refused: Counter[int] = field(default_factory=Counter)
    action_other: Counter[str] = field(default_factory=Counter)
    login_statuses: list[str] = field(default_factory=list)
    locked_right_password: str = ""
    idempotent: list[str] = field(default_factory=list)  # problems seen
    idempotent_ids: set[str] = field(default_factory=set)
    idempotent_phones: tuple[str, ...] = ()


def status_text(response: httpx.Response | None) -> str:
    return "no answer" if response is None else str(response.status_code)


async def shared_limits(load: Load, ports: Sequence[int]) -> SharedState:
    shared = SharedState()
    # 1. One customer's actions, alternating between the processes, against its limit.
    user = MiniUser(
        60_000, LIMIT_OPENID, load.seeded.advisors[0][0], phone(LIMIT_PREFIX, 1), "限流客户"
    )
    token = await load.login(user, ports[0])
    if token is None:
        shared.action_other["no session token"] += 1
    else:
        for i in range(ACTION_LIMIT_TRIES):
            port = ports[i % len(ports)]
            status = await load.act(user, token, port)
            if status == 200:
                shared.action_accepted[port] += 1
            elif status == 429:
                shared.action_refused[port] += 1
            else:
                shared.action_other[str(status)] += 1

    # 2. Wrong passwords for one username, alternating, each from its own address (so the
    # per-address rules play no part), then the right one.
    for i in range(LOGIN_LIMIT_TRIES + 1):
        right = i == LOGIN_LIMIT_TRIES
        answer = await load.traffic.call(
            load.client,
            "lockout login",
            ports[i % len(ports)],
            "POST",
            "/api/auth/login",
            json={"username": LOCKOUT_USER, "password": PASSWORD if right else "wrong-password"},
            headers={"X-Forwarded-For": customer_address(61_000 + i)},
        )
        if right:
            shared.locked_right_password = status_text(answer)
        else:
            shared.login_statuses.append(status_text(answer))

    # 3. The staff mini program's create, one key sent to each process: one after the
    # other, then both at once.
    manager = await load.staff_login("scaleout-manager")
    if manager is None:
        shared.idempotent.append("the manager could not log in")
        return shared
    phones = (phone(IDEMPOTENT_PREFIX, 1), phone(IDEMPOTENT_PREFIX, 2))
    shared.idempotent_phones = phones

    async def create(port: int, key: str, customer_phone: str) -> httpx.Response | None:
        form = {
            "name": "幂等客户",
            "phone": customer_phone,
            "leadSource": "美团",
            "contractStatus": "匹配中",
            "leadLevel": "A类",
        }
        return await load.traffic.call(
            load.client,
            "idempotent create",
            port,
            "POST",
            "/api/customers/miniprogram/create",
            json=form,
            headers={"Authorization": f"Bearer {manager}", "Idempotency-Key": key},
        )

    key = f"miniprogram_{load.run_id}_one_after_the_other"
    answers = [await create(port, key, phones[0]) for port in ports]
    key = f"miniprogram_{load.run_id}_both_at_once"
    together = list(await asyncio.gather(*(create(port, key, phones[1]) for port in ports)))
    for i, answer in enumerate(together):
        if answer is not None and answer.status_code == 409:
            # "in progress": what a client does with it is ask again, a moment later.
            shared.idempotent.append(f"a 409 while the other was in progress (port {ports[i]})")
            await asyncio.sleep(0.5)
            together[i] = await create(ports[i], key, phones[1])
    for label, pair in (("one after the other", answers), ("both at once", together)):
        if any(a is None or a.status_code != 201 for a in pair):
            shared.idempotent.append(f"{label}: answers {[status_text(a) for a in pair]}")
            continue
        if len({a.content for a in pair if a is not None}) != 1:
            shared.idempotent.append(f"{label}: the two answers differ")
        for answer in pair:
            data = data_of(answer)
            if data:
                shared.idempotent_ids.add(str(data["id"]))
    return shared


# -- after the load: what the database and the simulator hold --------------------------------------


@dataclass(frozen=True)
class Stored:
    actions: dict[str, tuple[str, Any]]  # id → (openid, seq in its data)
    follow_ups: dict[str, str]  # id → content
    console_assignments: dict[tuple[str, str], int]  # (customer, advisor) → history rows
    notifications: list[tuple[str, str, str | None, str | None, Any, int]]
    sent_by_worker: Counter[str]
    openids: dict[str, str | None]  # user id → bound openid
    idempotent_customers: Counter[str]  # phone → customers


async def stored_facts(database: Database, idempotent_phones: Sequence[str]) -> Stored:
    async with database.reader() as session:
        actions = {
            row.id: (row.openid, (row.action_data or {}).get("seq"))
            for row in await session.execute(
                select(CustomerAction.id, CustomerAction.openid, CustomerAction.action_data)
            )
        }
        follow_ups = {
            row.id: row.content
            for row in await session.execute(select(FollowUp.id, FollowUp.content))
        }
        assignments: Counter[tuple[str, str]] = Counter(
            (str(customer), str(to))
            for customer, to in await session.execute(
                select(AssignmentHistory.customer_id, AssignmentHistory.to_user_id).where(
                    AssignmentHistory.channel == "console"
                )
            )
        )
        notifications = [
            (row.id, row.status, row.advisor_id, row.template_id, row.payload, row.attempts)
            for row in await session.execute(
                select(
                    Notification.id,
                    Notification.status,
                    Notification.advisor_id,
                    Notification.template_id,
                    Notification.payload,
                    Notification.attempts,
                )
            )
        ]
        sent_by_worker: Counter[str] = Counter()
        for worker_id, count in await session.execute(
            select(NotificationAttempt.worker_id, func.count())
            .where(NotificationAttempt.outcome == "sent")
            .group_by(NotificationAttempt.worker_id)
        ):
            # A worker's id is host:pid:random: counted by pid.
            parts = str(worker_id).split(":")
            sent_by_worker[parts[1] if len(parts) == 3 else str(worker_id)] += count
        openids = {
            str(user_id): openid
            for user_id, openid in await session.execute(select(User.id, User.openid))
        }
        idempotent: Counter[str] = Counter(
            str(customer_phone)
            for customer_phone in await session.scalars(
                select(Customer.phone).where(Customer.phone.in_(idempotent_phones))
            )
        )
    return Stored(
        actions, follow_ups, assignments, notifications, sent_by_worker, openids, idempotent
    )


@dataclass(frozen=True)
class Matched:
    by_times: Counter[int]  # how many sent notifications reached the simulator 0, 1, 2… times
    stray: int  # messages matching no sent notification
    shared_keys: int  # notifications whose key another notification has too


def match(stored: Stored, messages: list[dict[str, Any]]) -> Matched:
    """How many times each sent notification reached the simulator.

    The worker sends a row to its advisor's bound openid (`touser`), with the row's template
    and the page of its payload. Every page here names one customer (a new lead, a seeded
    customer, a pool customer), and each customer acts towards one advisor only, so
    (touser, template, page) is one row: folding makes one row per customer and advisor for
    the whole run (a 10-minute window), and the customers without a phone, whose page names
    no customer, are one per advisor. The data is left out of the key on purpose: a row the
    dead worker had sent, recovered and then folded into again, goes out again with a newer
    payload, and is still the same notification delivered twice.
    """
    received: Counter[tuple[str, str, str]] = Counter(
        (str(m["touser"]), str(m["template_id"]), str(m.get("page") or "")) for m in messages
    )
    keys: Counter[tuple[str, str, str]] = Counter()
    sent_keys: list[tuple[str, str, str]] = []
    for _, status, advisor_id, template_id, payload, _ in stored.notifications:
        key = (
            str(stored.openids.get(advisor_id or "") or ""),
            str(template_id or ""),
            str((payload or {}).get("page") or ""),
        )
        keys[key] += 1
        if status == "sent":
            sent_keys.append(key)
    by_times: Counter[int] = Counter(received[key] for key in sent_keys)
    stray = sum(count for key, count in received.items() if key not in keys)
    shared_keys = sum(count for count in keys.values() if count > 1)
    return Matched(by_times, stray, shared_keys)


# -- the run ---------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds used over the load: each process of ours (a killed one up to its kill),
    the simulator, PostgreSQL's processes, this client, and the machine as a whole."""

    def __init__(self, children: Sequence[Child], sim_pid: int) -> None:
        pids = {child.name: child.pid for child in children} | {"simulator": sim_pid}
        self.readers: dict[str, Callable[[], float]] = {
            **{name: functools.partial(cpu_seconds, pid) for name, pid in pids.items()},
            "postgres (whole server)": functools.partial(named_cpu_seconds, "postgres"),
            "this client": time.process_time,
            "machine (all cores)": machine_busy_seconds,
        }
        self.start = {name: read() for name, read in self.readers.items()}
        self.used: dict[str, float] = {}

    def stop(self, *names: str) -> None:
        """The end for `names` (all not yet stopped when none is given) is now. Reading one
        process is quick: the victims' reading does not hold up the requests in flight."""
        for name in names or [n for n in self.readers if n not in self.used]:
            self.used[name] = self.readers[name]() - self.start[name]


@dataclass
class Outcome:
    seconds: float
    killed_at: float
    killed: tuple[Child, Child]
    shared: SharedState
    load: Load
    settled: bool
    settle_seconds: float
    stored: Stored
    messages: list[dict[str, Any]]
    stats: dict[str, Any]
    kill_codes: tuple[int | None, int | None] = (None, None)
    cpu: dict[str, float] = field(default_factory=dict)  # seconds over the load, by process
    # /metrics of the surviving API process after the load: (name, labels) -> value.
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.get((name, frozenset(labels.items())), 0.0)


async def run(
    url: str,
    sim_pid: int,
    sim_url: str,
    seeded: Seeded,
    apis: Sequence[Child],
    workers: Sequence[Child],
    arguments: argparse.Namespace,
) -> Outcome:
    ports = [api.port or 0 for api in apis]
    # Idle connections closed before the servers' 5 s keep-alive ends: a request never goes
    # out on a connection the server is closing (an error that would not be the kill's).
    limits = httpx.Limits(max_connections=arguments.concurrency * 2, keepalive_expiry=2.0)
    async with (
        httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client,
        httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as sim_http,
        SimControl(sim_url, http=sim_http) as control,
    ):
        checks = Load(client, control, Balancer(ports), seeded, secrets.token_hex(4))
        shared = await shared_limits(checks, ports)
        print(f"scaleout: shared limits and idempotency keys tried on ports {ports}", flush=True)

        # The checks' acknowledged actions are checked with the load's.
        load = Load(client, control, Balancer(ports), seeded, checks.run_id, acks=checks.acks)
        load.sequence = checks.sequence
        victim_api, victim_worker = apis[-1], workers[-1]
        cpu = CpuMeter([*apis, *workers], sim_pid)
        started = time.monotonic()
        load.ends_at = started + arguments.seconds
        killed_at = 0.0

        async def kill_half_way() -> None:
            nonlocal killed_at
            half = arguments.seconds / 2
            if arguments.send_delay_ms:
                # WeChat slow for a moment: the sends of the last second before the kill
                # are still in flight when the worker dies (an idle worker would test nothing).
                await asyncio.sleep(max(0.0, half - HOLD_BEFORE_KILL_S))
                await control.fault(
                    "subscribe_send", count=HELD_SENDS, delay_ms=arguments.send_delay_ms
                )
                await asyncio.sleep(min(half, HOLD_BEFORE_KILL_S))
            else:
                await asyncio.sleep(half)
            cpu.stop(victim_api.name, victim_worker.name)
            os.kill(victim_api.pid, signal.SIGKILL)
            os.kill(victim_worker.pid, signal.SIGKILL)
            in_flight = load.traffic.in_flight[victim_api.port or 0]
            load.balancer.down(victim_api.port or 0)  # from now on only the survivor
            killed_at = time.monotonic() - started
            print(
                f"scaleout: t={killed_at:.1f} s ({time.strftime('%H:%M:%S')}): SIGKILL to"
                f" {victim_api.name} (pid {victim_api.pid}, port {victim_api.port};"
                f" {in_flight} requests in flight to it) and {victim_worker.name}"
                f" (pid {victim_worker.pid})",
                flush=True,
            )

        staff_lanes = [advisor_lane(load, f"scaleout-advisor-{a}") for a in range(STAFF_ADVISORS)]
        customer_lanes = max(1, arguments.concurrency - STAFF_ADVISORS - 1)
        print(
            f"scaleout: load for {arguments.seconds:.0f} s, {customer_lanes} customer lanes,"
            f" {STAFF_ADVISORS} advisors and a manager",
            flush=True,
        )
        await asyncio.gather(
            kill_half_way(),
            manager_lane(load),
            *staff_lanes,
            *(customer_lane(load) for _ in range(customer_lanes)),
        )
        seconds = time.monotonic() - started
        cpu.stop()
        codes = (victim_api.process.wait(timeout=5), victim_worker.process.wait(timeout=5))

        database = Database.from_url(url)
        try:
            waited = time.monotonic()
            settled = False
            while time.monotonic() - waited < SETTLE_S:
                if not await unsettled(database):
                    settled = True
                    break
                await asyncio.sleep(0.5)
            settle_seconds = time.monotonic() - waited
            print(
                f"scaleout: outbox {'settled' if settled else 'NOT settled'} after"
                f" {settle_seconds:.1f} s",
                flush=True,
            )
            stored = await stored_facts(database, shared.idempotent_phones)
        finally:
            await database.dispose()
        messages = await control.messages()
        stats = await control.stats()
        # From the survivor: the killed processes' counts stay in the directory's sums.
        scraped = await client.get(f"http://127.0.0.1:{ports[0]}/metrics")
        metrics = scraped_counters(scraped.text) if scraped.status_code == 200 else {}
    return Outcome(
        seconds,
        killed_at,
        (victim_api, victim_worker),
        shared,
        load,
        settled,
        settle_seconds,
        stored,
        messages,
        stats,
        codes,
        cpu.used,
        metrics,
    )


def scraped_counters(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# -- the report ------------------------------------------------------------------------------------


@dataclass
class Report:
    rows: list[tuple[str, str]] = field(default_factory=list)
    checks: list[tuple[bool, str]] = field(default_factory=list)

    def row(self, label: str, value: str) -> None:
        self.rows.append((label, value))

    def check(self, passed: bool, text: str) -> None:
        self.checks.append((passed, text))

    @property
    def failed(self) -> list[str]:
        return [text for passed, text in self.checks if not passed]

    def show(self) -> None:
        width = max(len(label) for label, _ in self.rows)
        for label, value in self.rows:
            print(f"  {label:<{width}}  {value}")
        print("checks:")
        for passed, text in self.checks:
            print(f"  {'PASS' if passed else 'FAIL'}  {text}")


def counted(counter: Counter[Any]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counter.items(), key=str)) or "none"


def report(outcome: Outcome, apis: Sequence[Child], workers: Sequence[Child]) -> Report:
    out = Report()
    load, stored, shared = outcome.load, outcome.stored, outcome.shared
    traffic = load.traffic
    victim_api, victim_worker = outcome.killed

    # Requests, per process and per kind.
    for api in apis:
        port = api.port or 0
        answers = Counter({s: n for (p, s), n in traffic.statuses.items() if p == port})
        errors = Counter({e: n for (p, e), n in traffic.errors.items() if p == port})
        killed = " (killed half way)" if api is victim_api else ""
        out.row(
            f"{api.name}, port {port}{killed}: sent / answered",
            f"{traffic.sent[port]} / {traffic.answered[port]}; statuses {counted(answers)};"
            f" no answer {counted(errors)}",
        )
    answered = sum(traffic.answered.values())
    out.row(
        "throughput",
        f"{answered} answers in {outcome.seconds:.1f} s = {answered / outcome.seconds:.0f} req/s"
        f" (both processes; {sum(traffic.sent.values())} sent)",
    )
    kinds = sorted({kind for kind, _ in traffic.kinds})
    for kind in kinds:
        outcomes = Counter({o: n for (k, o), n in traffic.kinds.items() if k == kind})
        took = traffic.latencies.get(kind) or [0.0]
        out.row(
            f"  {kind}",
            f"{counted(outcomes)}; p50 {percentile(took, 0.5) * 1000:.0f} ms,"
            f" p99 {percentile(took, 0.99) * 1000:.0f} ms",
        )
    out.row(
        "CPU over the load",
        ", ".join(f"{name} {used:.1f} s" for name, used in outcome.cpu.items())
        + f" (of {outcome.seconds * (os.cpu_count() or 1):.0f} s on {os.cpu_count()} cores)",
    )
    out.row(
        "mini-program customers",
        f"{load.customers} logged in or tried, {ADVISORS} of them without a phone;"
        f" pool customers assigned {load.pool_taken}",
    )

    # Acknowledged writes against the database.
    acked = load.acks.actions
    missing = [i for i in acked if i not in stored.actions]
    wrong = [i for i, sent in acked.items() if i in stored.actions and stored.actions[i] != sent]
    extra = len(stored.actions) - (len(acked) - len(missing))
    out.row(
        "actions acknowledged / stored",
        f"{len(acked)} / {len(acked) - len(missing)} (stored but unacknowledged, in flight at the"
        f" kill: {extra}; rows in all {len(stored.actions)})",
    )
    out.check(
        not missing and not wrong,
        f"every acknowledged action stored as sent: {len(acked) - len(missing)} of {len(acked)}"
        + (f", {len(wrong)} stored with other data" if wrong else "")
        + (f"; missing e.g. {missing[:3]}" if missing else ""),
    )
    follow_ups = load.acks.follow_ups
    missing_f = [i for i, content in follow_ups.items() if stored.follow_ups.get(i) != content]
    out.row(
        "follow-ups acknowledged / stored",
        f"{len(follow_ups)} / {len(follow_ups) - len(missing_f)} (stored but unacknowledged:"
        f" {len(stored.follow_ups) - (len(follow_ups) - len(missing_f))})",
    )
    out.check(
        not missing_f,
        f"every acknowledged follow-up stored: {len(follow_ups) - len(missing_f)} of"
        f" {len(follow_ups)}" + (f"; missing e.g. {missing_f[:3]}" if missing_f else ""),
    )
    assigned = load.acks.assignments
    missing_a = [c for c, a in assigned.items() if not stored.console_assignments[(c, a)]]
    unacked_a = sum(n for (c, _), n in stored.console_assignments.items() if c not in assigned)
    out.row(
        "assignments acknowledged / stored",
        f"{len(assigned)} / {len(assigned) - len(missing_a)} (stored but unacknowledged:"
        f" {unacked_a})",
    )
    out.check(
        not missing_a,
        f"every acknowledged assignment stored: {len(assigned) - len(missing_a)} of"
        f" {len(assigned)}",
    )

    # Notifications.
    statuses = Counter(status for _, status, *_ in stored.notifications)
    queued = len(stored.notifications) - statuses["skipped"]
    matched = match(stored, outcome.messages)
    twice = sum(n for times, n in matched.by_times.items() if times >= 2)
    recovered = sum(1 for *_, attempts in stored.notifications if attempts > 1)
    out.row(
        "notifications",
        f"{len(stored.notifications)} rows: {counted(statuses)}; to deliver {queued}",
    )
    out.row(
        "messages at the simulator",
        f"{len(outcome.messages)}; per sent notification: "
        + ", ".join(f"{t} time(s) {n}" for t, n in sorted(matched.by_times.items()))
        + f"; matching no notification {matched.stray}",
    )
    out.row(
        "delivered twice or more (reported, not failed)",
        f"{twice} (rows claimed more than once, e.g. recovered from the dead worker: {recovered})",
    )
    names = {str(w.pid): w.name + (" (killed)" if w is victim_worker else "") for w in workers}
    out.row(
        "sends recorded, per worker",
        counted(Counter({names.get(pid, pid): n for pid, n in stored.sent_by_worker.items()})),
    )
    out.row(
        "outbox settled after the load",
        f"{'yes' if outcome.settled else 'NO'}, {outcome.settle_seconds:.1f} s"
        f" (WORKER_STALE_SECONDS={STALE_S}, WORKER_HEARTBEAT_SECONDS={HEARTBEAT_S})",
    )
    out.check(outcome.settled, f"no notification pending or sending within {SETTLE_S:.0f} s")
    out.check(
        statuses["sent"] == queued and matched.by_times[0] == 0,
        f"every queued notification delivered at least once: {statuses['sent']} of {queued}"
        f" sent, {matched.by_times[0]} of them never reached the simulator",
    )
    out.check(
        statuses["skipped"] == 0,
        f"no notification skipped (credits, openids and templates are all there):"
        f" {statuses['skipped']}",
    )
    out.check(
        matched.stray == 0 and matched.shared_keys == 0,
        f"each message matches one notification: {matched.stray} match none,"
        f" {matched.shared_keys} notifications share a key",
    )

    # The access token.
    fetches = outcome.stats.get("token_fetches", {})
    total_fetches = sum(int(n) for n in fetches.values())
    out.row("token fetches at the simulator", f"{total_fetches} ({counted(Counter(fetches))})")
    out.check(total_fetches == 1, f"one token fetch in all: {total_fetches}")

    # Limits and idempotency keys across the processes.
    accepted = sum(shared.action_accepted.values())
    refused = sum(shared.action_refused.values())
    out.row(
        f"actions of one openid under {ACTION_LIMIT_SPEC}, alternating",
        f"{ACTION_LIMIT_TRIES} sent: accepted {accepted} (per port"
        f" {counted(shared.action_accepted)}), 429 {refused}"
        + (f", other {counted(shared.action_other)}" if shared.action_other else ""),
    )
    out.check(
        accepted == ACTION_LIMIT and refused == ACTION_LIMIT_TRIES - ACTION_LIMIT,
        f"the action limit counted across both processes: {accepted} accepted"
        f" (expected {ACTION_LIMIT}), {refused} refused",
    )
    expected_logins = ["401"] * LOGIN_LIMIT + ["429"] * (LOGIN_LIMIT_TRIES - LOGIN_LIMIT)
    out.row(
        f"wrong passwords under {LOGIN_LIMIT_SPEC}, alternating",
        f"{' '.join(shared.login_statuses)}; then the right one: {shared.locked_right_password}",
    )
    out.check(
        shared.login_statuses == expected_logins and shared.locked_right_password == "429",
        f"the login-failure limit counted across both processes: wrong passwords answered"
        f" 401 before the lockout {shared.login_statuses.count('401')} (expected"
        f" {LOGIN_LIMIT}), then the right one {shared.locked_right_password} (expected 429)",
    )
    customers = stored.idempotent_customers
    out.row(
        "idempotent creates (one key, each process)",
        f"customers per key {[customers[p] for p in shared.idempotent_phones]},"
        f" ids answered {len(shared.idempotent_ids)}"
        + (f"; {'; '.join(shared.idempotent)}" if shared.idempotent else ""),
    )
    out.check(
        all(customers[p] == 1 for p in shared.idempotent_phones)
        and len(shared.idempotent_ids) == len(shared.idempotent_phones)
        and not [p for p in shared.idempotent if not p.startswith("a 409")],
        "an idempotent create sent to both processes makes one customer and one answer",
    )

    # /metrics of the survivor, summing all four processes, the two killed ones included.
    deliveries = "wxcrm_notification_deliveries_total"
    sent = outcome.metric(deliveries, outcome="sent", errcode="none")
    fetched = outcome.metric("wxcrm_wechat_token_fetches_total", forced="false", outcome="ok")
    refusals = "wxcrm_rate_limit_refusals_total"
    action_refusals = outcome.metric(refusals, rule="action_per_openid")
    login_refusals = outcome.metric(refusals, rule="login_failures_per_username")
    actions_answered = sum(
        value
        for (name, labels), value in outcome.metrics.items()
        if name == "wxcrm_http_requests_total" and ("route", "/api/customer/action") in labels
    )
    out.row(
        "/metrics of the survivor (all 4 processes)",
        f"deliveries sent {sent:.0f}, token fetches {fetched:.0f}, refusals action_per_openid"
        f" {action_refusals:.0f} and login_failures_per_username {login_refusals:.0f},"
        f" actions answered {actions_answered:.0f}",
    )
    out.check(
        # A send WeChat took from a worker killed before it counted it is in neither the
        # outbox's `sent` nor this counter twice: hence a range, not one figure.
        bool(outcome.metrics)
        and statuses["sent"] <= sent <= len(outcome.messages)
        and fetched == total_fetches
        and action_refusals == refused
        and login_refusals == (LOGIN_LIMIT_TRIES - LOGIN_LIMIT) + 1,
        f"/metrics counts every process, the killed ones too: {sent:.0f} sent (the simulator"
        f" received {len(outcome.messages)}), {fetched:.0f} token fetch(es),"
        f" {action_refusals:.0f} + {login_refusals:.0f} refusals",
    )

    # The processes.
    out.check(
        outcome.kill_codes == (-signal.SIGKILL, -signal.SIGKILL),
        f"the killed API process and worker died of SIGKILL: exit codes {outcome.kill_codes}",
    )
    survivors = [c for c in (*apis, *workers) if c not in outcome.killed]
    dead = [f"{c.name} ({c.process.poll()})" for c in survivors if c.process.poll() is not None]
    out.check(
        not dead, "the other API process and worker ran to the end" + (f": {dead}" if dead else "")
    )
    return out


# -- main ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def kept_on_failure(folder: Path) -> Iterator[list[bool]]:
    """The logs' folder, removed at the end unless the run failed (`passed[0]` stays False)."""
    passed = [False]
    try:
        yield passed
    finally:
        if passed[0]:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"scaleout: process logs kept in {folder}", flush=True)


def main(arguments: argparse.Namespace) -> int:
    url: str = arguments.database_url
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql") or not parsed.database:
        raise SystemExit("--database-url must be postgresql+asyncpg://…/<database>")
    if parsed.database in ("postgres", "template0", "template1"):
        raise SystemExit(f"refusing to drop the server's own database {parsed.database!r}")
    prefix = f"wxcrm-scaleout-{secrets.token_hex(6)}"
    if not asyncio.run(rate_limit_counts(arguments.redis_url, prefix, forget=False)):
        raise SystemExit(f"Redis at {arguments.redis_url} does not answer")
    deadline = time.monotonic() + arguments.timeout
    folder = Path(tempfile.mkdtemp(prefix="wxcrm-scaleout-"))
    print(f"scaleout: database {parsed.database}, rate limits under {prefix!r}, logs in {folder}")
    # SIGTERM unwinds like Ctrl-C: the processes are stopped and the database dropped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    with kept_on_failure(folder) as passed, contextlib.ExitStack() as stack:
        stack.callback(lambda: asyncio.run(recreate_database(url, create=False)))
        stack.callback(
            lambda: asyncio.run(rate_limit_counts(arguments.redis_url, prefix, forget=True))
        )
        began = time.monotonic()
        asyncio.run(recreate_database(url, create=True))
        seeded = asyncio.run(prepare(url))
        print(f"scaleout: migrated and seeded in {time.monotonic() - began:.1f} s", flush=True)
        sim = stack.enter_context(simulator())
        asyncio.run(prepare_simulator(sim.url, seeded))
        cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="wxcrm-scaleout-pyc-"))
        children = Children(folder, Path(cache))
        stack.callback(children.stop)
        env = environment(url, sim.url, arguments.redis_url, prefix, folder / "metrics")
        ports: set[int] = set()
        while len(ports) < 2:
            ports.add(free_port())
        api_1, api_2 = sorted(ports)
        began = time.monotonic()
        apis = [children.start("api-1", ["serve", "--port", str(api_1)], env, api_1)]
        children.wait_ready(apis, [], deadline)  # it compiles; the others read its bytecode
        apis.append(children.start("api-2", ["serve", "--port", str(api_2)], env, api_2))
        workers = [
            children.start(f"worker-{i + 1}", ["worker"], env | WORKER_POOL, None) for i in range(2)
        ]
        children.wait_ready(apis, workers, deadline)
        print(f"scaleout: processes up in {time.monotonic() - began:.1f} s", flush=True)
        for child in (*apis, *workers):
            # The Popen's own pid is the Python running wxcrm (no shell, no wrapper): the
            # SIGKILL half way reaches the process that serves.
            cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
            if "wxcrm" not in [part.decode() for part in cmdline]:
                raise RuntimeError(f"{child.name}: pid {child.pid} runs {cmdline}")
        pids = ", ".join(f"{c.name} pid {c.pid}" for c in (*apis, *workers))
        print(f"scaleout: started {pids}; simulator {sim.url}", flush=True)
        remaining = deadline - time.monotonic()
        try:
            outcome = asyncio.run(
                asyncio.wait_for(
                    run(url, sim.pid, sim.url, seeded, apis, workers, arguments), remaining
                )
            )
        except TimeoutError:
            print(f"scaleout: FAIL: not done within --timeout {arguments.timeout:.0f} s")
            return 1
        result = report(outcome, apis, workers)
        print(
            f"scaleout [postgresql]: 2 API processes, 2 workers, {outcome.seconds:.1f} s of load,"
            f" {arguments.concurrency} requests in flight; SIGKILL at t={outcome.killed_at:.1f} s"
        )
        result.show()
        if result.failed:
            print(f"scaleout: {len(result.failed)} check(s) failed:")
            for text in result.failed:
                print(f"  {text}")
            return 1
        passed[0] = True
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="postgresql+asyncpg://…/<database>")
    parser.add_argument("--seconds", type=float, default=30.0, help="the load, killed half way")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument(
        "--send-delay-ms",
        type=int,
        default=2000,
        help=f"the simulator holds the next {HELD_SENDS} sends this long from"
        f" {HOLD_BEFORE_KILL_S} s before the kill (0: not at all)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=240.0, help="the whole run at most")
    arguments = parser.parse_args()
    configure_logging("WARNING", "json")
    try:
        sys.exit(main(arguments))
    except KeyboardInterrupt:
        # Everything it started is stopped and the database dropped by now.
        print("scaleout: interrupted", file=sys.stderr)
        sys.exit(130)
