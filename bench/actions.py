"""Customer actions against the liveness endpoint, in one run against one API process, then
against two.

    .venv/bin/python -m bench.actions [--seconds 10] [--warmup 2] [--connections 64]
        [--workers 2] [--database-url URL] [--profile FILE | --py-spy FILE]

Starts the WeChat simulator and one `wxcrm serve` process (its embedded delivery worker
sends the queued messages to the simulator during the run: part of the load), then drives
`GET /api/health/live` and then `POST /api/customer/action` at 64 connections with
bench/load.py. The action mix: 20 % new phones (each makes a lead), 50 % phones of seeded
customers, 30 % without a phone; the three action types; many openids, each with its own
session token; a few advisors with credits, so every action queues (or folds) a message.

Prints one line per endpoint (requests/s, p50/p99, non-200 answers, the server's CPU per
request) and a summary: action rate / liveness rate (target ≥ 25 %), action p99
(target ≤ 50 ms). Then the action phase once more against `wxcrm serve --workers 2` on the
same database, and its rate against one process's (target ≥ 1.7 times).

To see what limits the action endpoint: `--py-spy FILE` samples the server with py-spy
(not a project dependency: `pip install py-spy` into any venv, then PY_SPY=path) over the
action phase and prints own time by package and by function; `--profile FILE` runs the
server under cProfile instead (much slower, and its cumulative times mislead for
coroutines). Neither run's figures are the benchmark's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bench.common import SIM_APP_ID, SIM_SECRET, database_url, free_port, fresh_database, simulator
from bench.load import Requests, Result, Same, measure, request_bytes
from wxcrm.core.db import Database
from wxcrm.core.logging import configure_logging
from wxcrm.core.models import utcnow
from wxcrm.core.security import create_token
from wxcrm.customers.leads import create_or_link_lead
from wxcrm.customers.models import Customer, CustomerAction
from wxcrm.miniprogram.models import MiniProgramUser
from wxcrm.notifications.models import Notification
from wxcrm.notifications.subscriptions import grant_credits
from wxcrm.users.models import Role
from wxcrm.users.service import create_user

SECRET_KEY = "bench-secret-key-bench-secret-key"
TEMPLATE = "tmpl-bench-action"
ADVISORS = 4
KNOWN_CUSTOMERS = 5_000
OPENIDS = 10_000
CREDITS = 10**9
# Per 100 requests: how many carry a new phone, a seeded customer's phone, no phone.
MIX = {"new": 20, "known": 50, "none": 30}
ACTION_TYPES = ("view_resume", "contact_advisor", "book_service")
USER_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI"
)
CREATED = b'"customerCreated":true'


def openid(n: int) -> str:
    return f"o-bench-{n:08d}"


def known_phone(n: int) -> str:
    return f"138{n:08d}"


def new_phone(n: int) -> str:
    return f"139{n:08d}"  # never seeded: 139… against the seeded 138…


def customer_address(n: int) -> str:
    return f"198.18.{n // 256 % 256}.{n % 256}"  # RFC 2544's benchmarking range


@dataclass(frozen=True)
class ActionRequests:
    """The i-th action request: the mix above, spread over openids, advisors and types."""

    host: str
    advisors: tuple[str, ...]
    tokens: tuple[str, ...]  # the session token of openid(n), at index n
    pattern: tuple[str, ...]  # 100 kinds in a fixed shuffled order

    def __call__(self, i: int) -> bytes:
        kind = self.pattern[i % len(self.pattern)]
        advisor = i % len(self.advisors)
        body: dict[str, object] = {
            "advisorId": self.advisors[advisor],
            "actionType": ACTION_TYPES[i % len(ACTION_TYPES)],
            "actionData": {
                "resumeId": f"resume-{advisor:04d}",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
            },
        }
        if kind == "known":
            # A seeded customer, from the openid that made it.
            n = (i * 7_919) % KNOWN_CUSTOMERS
            body["customerPhone"] = known_phone(n)
        else:
            n = (i * 104_729) % len(self.tokens)
            if kind == "new":
                body["customerPhone"] = new_phone(i)
        body["customerId"] = openid(n)
        return request_bytes(
            "POST",
            "/api/customer/action",
            self.host,
            {
                "Authorization": f"Bearer {self.tokens[n]}",
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                # Customers reach us through a reverse proxy (TRUSTED_PROXIES): each phone
                # has its own address, from the range set aside for benchmarks.
                "X-Forwarded-For": customer_address(n),
            },
            json.dumps(body, ensure_ascii=False).encode(),
        )


async def seed(database: Database) -> list[tuple[str, str]]:
    """Advisors with credits and bound openids, known customers, mini-program users."""
    advisors: list[tuple[str, str]] = []
    async with database.writer() as session:
        for a in range(ADVISORS):
            advisor = await create_user(
                session,
                username=f"bench-advisor-{a}",
                password="bench-password",
                role=Role.advisor,
                name=f"顾问{a}",
            )
            advisor.openid = f"o-bench-advisor-{a}"
            await grant_credits(
                session,
                advisor_id=advisor.id,
                openid=advisor.openid,
                template_id=TEMPLATE,
                credits=CREDITS,
            )
            advisors.append((advisor.id, advisor.openid))
        now = utcnow()
        session.add_all(
            MiniProgramUser(openid=openid(n), first_seen_at=now, last_login_at=now)
            for n in range(OPENIDS)
        )
        await session.flush()
        for n in range(KNOWN_CUSTOMERS):
            await create_or_link_lead(
                session,
                phone=known_phone(n),
                name=None,
                openid=openid(n),
                advisor_id=advisors[n % ADVISORS][0],
                remark="bench: seeded",
                verified=False,
            )
        await session.commit()
    return advisors


async def prepare(url: str) -> list[tuple[str, str]]:
    """A fresh schema, seeded (one event loop: the pool's connections belong to it)."""
    database = await fresh_database(url)
    try:
        return await seed(database)
    finally:
        await database.dispose()


def grant_at_simulator(sim_url: str, advisors: list[tuple[str, str]]) -> None:
    """WeChat's side of the advisors' credits: the simulator lets each receive that many."""
    for _, advisor_openid in advisors:
        httpx.post(
            f"{sim_url}/sim/subscriptions",
            json={"openid": advisor_openid, "template_id": TEMPLATE, "count": CREDITS},
        ).raise_for_status()


@contextmanager
def server(
    url: str,
    sim_url: str,
    log: Path,
    profile: Path | None,
    workers: int = 1,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`wxcrm serve` in a process of its own, its output kept in `log` to look at after;
    with `workers`, that many API processes (uvicorn's) under it."""
    port = free_port()
    prefix = [sys.executable]
    if profile is not None:
        prefix += ["-m", "cProfile", "-o", str(profile)]
    command = [*prefix, "-m", "wxcrm", "serve", "--port", str(port), "--workers", str(workers)]
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "WECHAT_API_BASE": sim_url,
        "WECHAT_APP_ID": SIM_APP_ID,
        "WECHAT_APP_SECRET": SIM_SECRET,
        "WECHAT_TEMPLATE_CUSTOMER_ACTION": TEMPLATE,
        "LOG_LEVEL": "WARNING",
        "TRUSTED_PROXIES": '["127.0.0.1"]',
    }
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/health/live", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{command} did not start:\n{tail}") from None
                time.sleep(0.1)
        yield port, process
    finally:
        # uvicorn re-raises the signal it stopped on: SIGTERM would then kill cProfile before
        # it writes its file, where SIGINT becomes a KeyboardInterrupt that it lets through.
        process.send_signal(signal.SIGINT if profile is not None else signal.SIGTERM)
        process.wait(timeout=60)


@contextmanager
def sampled(output: Path | None, pid: int, seconds: float) -> Iterator[None]:
    """py-spy, when asked for, recording `pid` for `seconds` (on-CPU samples only)."""
    if output is None:
        yield
        return
    binary = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if binary is None:
        raise SystemExit("--py-spy: set PY_SPY or put py-spy on PATH (pip install py-spy)")
    command = [binary, "record", "--pid", str(pid), "--duration", str(round(seconds))]
    command += ["--rate", "200", "--format", "raw", "--function", "--nonblocking"]
    recorder = subprocess.Popen(
        [*command, "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        recorder.wait(timeout=seconds + 60)


def children(pid: int) -> tuple[int, ...]:
    """The API processes uvicorn's supervisor `pid` spawned (not its resource tracker)."""
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    spawned = [c for c in found if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    return tuple(int(child) for child in spawned)


def _area(frame: str) -> str:
    """Where a frame's code lives: a package or standard module, or a wxcrm package.

    py-spy names files relative to their sys.path entry: `sqlalchemy/orm/session.py:2283`.
    """
    where = frame.rsplit(" (", 1)[-1].rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    if parts[0] == "wxcrm" and len(parts) > 2:
        return f"wxcrm.{parts[1]}"
    return parts[0].removesuffix(".py")


def summarize_samples(path: Path, top: int = 20) -> str:
    """Own samples (the innermost frame) per package and per function.

    Only own time: py-spy cannot follow SQLAlchemy's greenlet switches, so stacks come cut
    and inclusive times would mislead. C code counts for the Python frame that called it
    (uvloop's loop for `Runner.run`, the sqlite3 module for aiosqlite's thread); py-spy
    takes a thread blocked on a Python-level wait (`Condition.wait`) for active.
    """
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for raw in path.read_text().splitlines():
        stack, _, count = raw.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        own[frames[-1]] += n
        areas[_area(frames[-1])] += n
    lines = [f"  {total} samples (active threads); own time by package:"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in areas.most_common(top)]
    lines.append("  own time by function:")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


async def database_counts(url: str) -> dict[str, int]:
    database = Database.from_url(url)
    try:
        async with database.reader() as session:
            counts = {
                "customers": await session.scalar(select(func.count()).select_from(Customer)),
                "actions": await session.scalar(select(func.count()).select_from(CustomerAction)),
            }
            rows = await session.execute(
                select(
                    Notification.status, func.count(), func.sum(Notification.fold_count)
                ).group_by(Notification.status)
            )
            for status, count, folded in rows:
                counts[f"notifications {status}"] = count
                counts[f"events {status}"] = folded or 0
    finally:
        await database.dispose()
    return {key: int(value or 0) for key, value in counts.items()}


def line(backend: str, label: str, result: Result, pids: tuple[int, ...]) -> str:
    server_ms = sum(result.cpu[pid] for pid in pids) / max(1, result.completed) * 1000
    client_ms = result.client_cpu / max(1, result.completed) * 1000
    failures = result.failures()
    other = ", ".join(f"{s or 'transport'}: {n}" for s, n in sorted(result.statuses.items()))
    return (
        f"actions [{backend}] {label}: {result.connections} connections, {result.seconds:.0f} s:"
        f" {result.rate:,.0f} req/s, p50 {result.percentile_ms(0.5):.1f} ms,"
        f" p99 {result.percentile_ms(0.99):.1f} ms; non-200 {failures}"
        + (f" ({other})" if failures else "")
        + f"; CPU per request: server {server_ms:.2f} ms"
        + "".join(
            f", {name} {cpu / max(1, result.completed) * 1000:.2f} ms"
            for name, cpu in result.named_cpu.items()
        )
        + f", client {client_ms:.2f} ms; machine {result.machine_busy * 100:.0f} % busy"
        f" (of {os.cpu_count()} cores; other processes {result.other_cores():.2f} cores)"
    )


def main(arguments: argparse.Namespace, url: str) -> None:
    advisors = asyncio.run(prepare(url))
    lifetime = timedelta(days=1)
    tokens = tuple(
        create_token(SECRET_KEY, openid(n), "miniprogram", lifetime) for n in range(OPENIDS)
    )
    pattern = [kind for kind, share in MIX.items() for _ in range(share)]
    random.Random(7).shuffle(pattern)
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    with tempfile.TemporaryDirectory() as folder, simulator() as sim:
        grant_at_simulator(sim.url, advisors)
        log = Path(folder) / "server.log"
        with server(url, sim.url, log, arguments.profile) as (port, process):
            host = f"127.0.0.1:{port}"

            def drive(requests: Requests, tally: tuple[bytes, ...] = ()) -> Result:
                return measure(
                    "127.0.0.1",
                    port,
                    requests,
                    connections=arguments.connections,
                    warmup=arguments.warmup,
                    seconds=arguments.seconds,
                    watch=(process.pid, sim.pid),
                    watch_names=() if backend == "sqlite" else ("postgres",),
                    tally=tally,
                )

            live = drive(
                Same(request_bytes("GET", "/api/health/live", host, {"User-Agent": USER_AGENT}))
            )
            advisor_ids = tuple(a for a, _ in advisors)
            with sampled(arguments.py_spy, process.pid, arguments.warmup + arguments.seconds):
                action = drive(
                    ActionRequests(host, advisor_ids, tokens, tuple(pattern)), (CREATED,)
                )
            sim_stats = httpx.get(f"{sim.url}/sim/stats").json()
            sends_at_end = int(sim_stats["calls"].get("subscribe_send", 0))
            token_fetches = int(sim_stats["token_fetches"].get("stable_token", 0))
        server_log = log.read_text(errors="replace").splitlines()
        spread = None
        if arguments.workers > 1:
            with server(url, sim.url, log, None, arguments.workers) as (port, parent):
                processes = children(parent.pid)
                spread = measure(
                    "127.0.0.1",
                    port,
                    ActionRequests(f"127.0.0.1:{port}", advisor_ids, tokens, tuple(pattern)),
                    connections=arguments.connections,
                    warmup=arguments.warmup,
                    seconds=arguments.seconds,
                    watch=processes,
                    watch_names=() if backend == "sqlite" else ("postgres",),
                )
    counts = asyncio.run(database_counts(url))

    action_label = "POST /api/customer/action (20 % new phone, 50 % known, 30 % none)"
    print(line(backend, "GET /api/health/live", live, (process.pid,)))
    print(line(backend, action_label, action, (process.pid,)))
    if spread is not None:
        label = f"the same, {arguments.workers} API processes (serve --workers)"
        print(line(backend, label, spread, processes))
        print(
            f"actions [{backend}] {arguments.workers} processes / 1:"
            f" {spread.rate / action.rate:.2f} times (target ≥ 1.7 for 2)"
        )
    ratio = action.rate / live.rate
    p99 = action.percentile_ms(0.99)
    sim_ms = action.cpu[sim.pid] / max(1, action.completed) * 1000
    answered = action.totals[200]
    new_requested = sum(1 for i in range(sum(action.totals.values())) if pattern[i % 100] == "new")
    print(
        f"actions [{backend}] summary: action/liveness {ratio * 100:.1f} % (target ≥ 25 %),"
        f" action p99 {p99:.1f} ms (target ≤ 50 ms);"
        f" actions answered 200 {answered}, recorded {counts['actions']};"
        f" leads created {counts['customers'] - KNOWN_CUSTOMERS}"
        f" (customerCreated in {action.tallies[CREATED]} answers, {new_requested} asked);"
        f" messages sent to the simulator during the run {sends_at_end}"
        f" (token fetches {token_fetches}, expected 1)"
        f" (simulator CPU {sim_ms:.2f} ms per action); notifications"
        f" {', '.join(f'{k[14:]} {v}' for k, v in counts.items() if k.startswith('notif'))},"
        f" events folded in {sum(v for k, v in counts.items() if k.startswith('events'))}"
        f"; server log lines {len(server_log)}"
    )
    for result in (live, action):
        for error in result.errors:
            print(f"  client error: {error}")
    for entry in server_log[:5]:
        print(f"  server log: {entry[:6000]}")
    if arguments.py_spy is not None:
        print(f"py-spy samples of the server over the action phase ({arguments.py_spy}):")
        print(summarize_samples(arguments.py_spy))
    if arguments.profile is not None:
        print(f"profile of the server (cProfile, {arguments.profile}):")
        stats = pstats.Stats(str(arguments.profile))
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed, per endpoint")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed, per endpoint")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="then the action phase again against `serve --workers N` (1: not at all)",
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the server")
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="sample the server with py-spy (from $PY_SPY or PATH) over the action phase,"
        " into this file (collapsed stacks), and print the top costs",
    )
    arguments = parser.parse_args()
    configure_logging("WARNING", "json")
    with database_url(arguments.database_url) as url:
        main(arguments, url)
