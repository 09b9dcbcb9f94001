"""The speed figures in one run on one database: actions, searches, drain, two processes.

    .venv/bin/python -m bench.speed [--database-url URL] [--quick]

Runs `bench.actions` (one API process, then `serve --workers 2`), `bench.customers` (its
list queries over 100,000 customers; no batch assignment) and `bench.drain` (one worker)
one after the other, each printing its own lines, then a table of the figures they
measured against their targets. On PostgreSQL each gets the database in turn (each empties
it first). `--quick` runs shorter phases and fewer customers: to try it, not to quote.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    label: str
    pattern: str  # a regular expression over the benchmarks' output; its groups are shown
    shown: str  # how the groups read
    target: str


FIGURES = (
    Figure(
        "action, 64 connections, 1 API process",
        r"POST /api/customer/action .*?: ([\d,]+) req/s, p50 ([\d.]+) ms, p99 ([\d.]+) ms;"
        r".*?server ([\d.]+) ms",
        "{} req/s, p50 {} ms, p99 {} ms; server CPU {} ms/action",
        "p99 ≤ 50 ms",
    ),
    Figure(
        "liveness, same run",
        r"GET /api/health/live: .*?: ([\d,]+) req/s.*?server ([\d.]+) ms",
        "{} req/s; server CPU {} ms/request",
        "",
    ),
    Figure("action / liveness", r"action/liveness ([\d.]+) %", "{} %", "≥ 25 %"),
    Figure(
        "action, 2 API processes",
        r"the same, 2 API processes .*?: ([\d,]+) req/s, p50 ([\d.]+) ms, p99 ([\d.]+) ms",
        "{} req/s, p50 {} ms, p99 {} ms",
        "",
    ),
    Figure("2 processes / 1", r"2 processes / 1: ([\d.]+) times", "{} times", "≥ 1.7"),
    Figure(
        "name search, 100,000 customers",
        r"list name search: .*?p50 ([\d.]+) ms, p95 ([\d.]+) ms.*?server ([\d.]+) ms(.*?);",
        "p50 {} ms (p95 {}); server CPU {} ms{}",
        "p50 ≤ 20 ms",
    ),
    Figure(
        "phone-prefix search",
        r"list phone-prefix search: .*?p50 ([\d.]+) ms, p95 ([\d.]+) ms.*?server ([\d.]+) ms(.*?);",
        "p50 {} ms (p95 {}); server CPU {} ms{}",
        "p50 ≤ 20 ms",
    ),
    Figure(
        "drain, 1 worker process",
        r"drain \[.*?1 worker process\]: .*?= ([\d,]+) msg/s.*?workers ([\d.]+) ms",
        "{} msg/s; worker CPU {} ms/message",
        "≥ 1,000 msg/s",
    ),
)


def run(module: str, *arguments: str) -> str:
    command = [sys.executable, "-m", module, *arguments]
    print(f"$ {' '.join(command[1:])}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{module} failed ({done.returncode})")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true", help="short phases, 20,000 customers")
    arguments = parser.parse_args()
    database = ["--database-url", arguments.database_url] if arguments.database_url else []
    actions = ["--seconds", "4", "--warmup", "1"] if arguments.quick else []
    customers = ["--customers", "20000", "--requests", "30"] if arguments.quick else []
    drain = ["--count", "2000"] if arguments.quick else []
    output = run("bench.actions", *database, *actions)
    output += run("bench.customers", *database, *customers, "--batch", "0")
    output += run("bench.drain", *database, *drain)

    backend = "postgresql" if arguments.database_url else "sqlite"
    print(f"\nspeed [{backend}]:")
    for figure in FIGURES:
        found = re.search(figure.pattern, output)
        value = figure.shown.format(*found.groups()) if found else "not measured"
        target = f"  (target {figure.target})" if figure.target else ""
        print(f"  {figure.label}: {value}{target}")


if __name__ == "__main__":
    main()
