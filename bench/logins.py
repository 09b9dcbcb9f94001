"""Liveness while staff log in: argon2 must not stall the rest of the process.

    .venv/bin/python -m bench.logins [--seconds 10] [--logins 4] [--database-url URL]

Starts the WeChat simulator and one `wxcrm serve`, then measures `GET /api/health/live` at
8 connections alone, and again while `--logins` connections log in as fast as they can
(the right password; each request from its own address behind a trusted proxy, so the
per-address login limit measures nothing here). Prints liveness p50/p99 in both runs and
the login rate: with argon2 on the event loop, every liveness answer would wait behind
the hashes in progress (the issue measured p50 3 ms → 114 ms at four logins).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.actions import customer_address, prepare, server
from bench.common import database_url, simulator
from bench.load import Result, Same, measure, request_bytes
from wxcrm.core.logging import configure_logging


@dataclass(frozen=True)
class Logins:
    host: str

    def __call__(self, i: int) -> bytes:
        body = json.dumps({"username": "bench-advisor-0", "password": "bench-password"})
        return request_bytes(
            "POST",
            "/api/auth/login",
            self.host,
            {"Content-Type": "application/json", "X-Forwarded-For": customer_address(i)},
            body.encode(),
        )


def describe(label: str, result: Result) -> str:
    return (
        f"logins {label}: {result.rate:,.0f} req/s, p50 {result.percentile_ms(0.5):.1f} ms,"
        f" p99 {result.percentile_ms(0.99):.1f} ms; non-200 {result.failures()}"
    )


def main(arguments: argparse.Namespace, url: str) -> None:
    asyncio.run(prepare(url))
    with tempfile.TemporaryDirectory() as folder, simulator() as sim:
        log = Path(folder) / "server.log"
        with server(url, sim.url, log, None) as (port, process):
            host = f"127.0.0.1:{port}"
            live = Same(request_bytes("GET", "/api/health/live", host))

            def drive(requests: object, connections: int) -> Result:
                return measure(
                    "127.0.0.1",
                    port,
                    requests,  # type: ignore[arg-type]
                    connections=connections,
                    warmup=1.0,
                    seconds=arguments.seconds,
                    watch=(process.pid,),
                )

            alone = drive(live, 8)
            with ThreadPoolExecutor(max_workers=2) as both:
                during_run = both.submit(drive, live, 8)
                login_run = both.submit(drive, Logins(host), arguments.logins)
                during, logins = during_run.result(), login_run.result()
    print(describe("GET /api/health/live alone, 8 connections", alone))
    print(describe(f"GET /api/health/live during {arguments.logins} concurrent logins", during))
    print(describe(f"POST /api/auth/login, {arguments.logins} connections", logins))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--logins", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    configure_logging("WARNING", "json")
    with database_url(arguments.database_url) as url:
        main(arguments, url)
