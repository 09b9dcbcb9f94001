"""What an operator reads: one access line per request naming the route, the caller and the
request id (the proxy's, when it sent one); /metrics closed in production unless opened;
counters summed over processes, a killed process's counts kept and its live gauges dropped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.core.test_hardening import app_with, get
from tests.factories import DEFAULT_PASSWORD, make_user, mp_headers, staff_headers
from wxcrm.core.db import Database
from wxcrm.core.logging import openid_hash
from wxcrm.core.settings import Environment, Settings
from wxcrm.users.models import Role
from wxcrm.wechat.sim import SimControl


def request_logs() -> AbstractContextManager[list[dict[str, Any]]]:
    """The log lines of the block, with what the request bound (its id, the caller)."""
    return structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])


def access_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == "request"]


async def test_the_access_line_names_route_status_duration_and_the_staff_member(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    manager = await make_user(session, role=Role.manager)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        answer = await client.get(
            "/api/customers", headers={**staff_headers(manager), "X-Request-ID": "edge-7f3a.1"}
        )
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "edge-7f3a.1"  # the proxy's id, kept
    [line] = access_lines(logs)
    assert line["request_id"] == "edge-7f3a.1"
    assert line["route"] == "/api/customers"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["ms"] >= 0
    assert line["staff_id"] == manager.id
    assert "openid_hash" not in line
    # Every other line of the request carries the same id.
    assert all(entry.get("request_id") == "edge-7f3a.1" for entry in logs)


async def test_a_mini_program_caller_is_logged_by_a_hash_of_its_openid(
    client: httpx.AsyncClient,
) -> None:
    openid = "o-observed-customer"
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        # A body the route refuses: the caller is still named on its line.
        answer = await client.post("/api/customer/action", json={}, headers=mp_headers(openid))
    assert answer.status_code == 400
    [line] = access_lines(logs)
    assert line["route"] == "/api/customer/action"
    assert line["openid_hash"] == openid_hash(openid)
    assert openid not in str(logs)
    assert "staff_id" not in line


async def test_logins_name_who_logged_in(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    advisor = await make_user(session, role=Role.advisor)
    code = await sim_control.mint_login_code("o-logging-in")
    with request_logs() as logs:
        staff = await client.post(
            "/api/auth/login", json={"username": advisor.username, "password": DEFAULT_PASSWORD}
        )
        customer = await client.post("/api/wechat/openid", json={"code": code})
    assert staff.status_code == 200 and customer.status_code == 200
    staff_line, customer_line = access_lines(logs)
    assert staff_line["route"] == "/api/auth/login" and staff_line["staff_id"] == advisor.id
    assert customer_line["openid_hash"] == openid_hash("o-logging-in")
    assert "o-logging-in" not in str(logs)


async def test_a_request_id_that_is_no_plain_token_is_replaced(client: httpx.AsyncClient) -> None:
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        answer = await client.get(
            "/api/customers/0123456789abcdef01234567", headers={"X-Request-ID": "a b\tinjected"}
        )
    assert answer.status_code == 401
    given = answer.headers["x-request-id"]
    assert given != "a b\tinjected" and len(given) == 32
    [line] = access_lines(logs)
    assert line["request_id"] == given
    assert line["route"] == "/api/customers/{customer_id}"  # the template, not the id
    assert line["path"] == "/api/customers/0123456789abcdef01234567"
    assert "staff_id" not in line  # no caller was proved


async def test_metrics_are_closed_in_production_unless_opened(
    settings: Settings, database: Database
) -> None:
    production = app_with(settings, database, env=Environment.production)
    assert_error(await get(production, "/metrics"), 404, "NOT_FOUND")
    opened = app_with(settings, database, env=Environment.production, metrics_public=True)
    assert (await get(opened, "/metrics")).status_code == 200
    development = app_with(settings, database, env=Environment.development)
    assert (await get(development, "/metrics")).status_code == 200
    closed = app_with(settings, database, env=Environment.development, metrics_public=False)
    assert_error(await get(closed, "/metrics"), 404, "NOT_FOUND")


@pytest.mark.parametrize("env", [Environment.production, Environment.development])
async def test_a_metrics_token_is_asked_for_whenever_one_is_set(
    settings: Settings, database: Database, env: Environment
) -> None:
    token = "scrape-token-for-prometheus-0123456789"
    app = app_with(settings, database, env=env, metrics_token=SecretStr(token))
    for refused in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
        answer = await get(app, "/metrics", **refused)
        assert_error(answer, 401, "UNAUTHORIZED")
        assert token not in answer.text
        assert answer.headers["cache-control"] == "no-store"
    answer = await get(app, "/metrics", Authorization=f"Bearer {token}")
    assert answer.status_code == 200
    assert "wxcrm_database_up 1.0" in answer.text
    assert answer.headers["cache-control"] == "no-store"


# -- several processes, one directory: prometheus-client's multi-process mode ------------

_COUNTING_PROCESS = """
import sys, time
from wxcrm.core.metrics import DB_CONNECTIONS_IN_USE, DELIVERIES
DELIVERIES.labels("sent", "none").inc(int(sys.argv[1]))
DB_CONNECTIONS_IN_USE.inc(2)
print("counted", flush=True)
time.sleep(60)
"""

_SCRAPING_PROCESS = """
from wxcrm.core.metrics import exposition
print(exposition().decode())
"""


def _in_metrics_dir(directory: Path, script: str, *arguments: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *arguments], env=env, stdout=subprocess.PIPE, text=True
    )


def _scraped(directory: Path) -> dict[str, float]:
    scraper = _in_metrics_dir(directory, _SCRAPING_PROCESS)
    out, _ = scraper.communicate(timeout=60)
    figures = {}
    for line in out.splitlines():
        if line.startswith(("wxcrm_notification_deliveries_total{", "wxcrm_db_pool_connections")):
            name, number = line.rsplit(" ", 1)
            figures[name] = float(number)
    return figures


def test_a_killed_process_keeps_its_counts_and_loses_its_live_gauges(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"  # not made yet: the first process makes it
    processes = [_in_metrics_dir(directory, _COUNTING_PROCESS, str(n)) for n in (3, 4)]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "counted"
        sent = 'wxcrm_notification_deliveries_total{errcode="none",outcome="sent"}'
        in_use = "wxcrm_db_pool_connections_in_use"
        assert _scraped(directory) == {sent: 7.0, in_use: 4.0}

        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=30)
        # Deliveries it made happened; the connections it held are gone with it.
        assert _scraped(directory) == {sent: 7.0, in_use: 2.0}
    finally:
        for process in processes:
            process.kill()
            process.communicate(timeout=30)  # reaped, and its pipe closed


def test_a_metrics_directory_that_cannot_be_made_stops_the_process_in_one_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    unmakeable = tmp_path / "a-file" / "metrics"
    refused = subprocess.run(
        [sys.executable, "-c", "import wxcrm.core.metrics"],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(unmakeable)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: PROMETHEUS_MULTIPROC_DIR={unmakeable} cannot be made (Not a directory);"
        " create it for this user (README: Deployment) or unset it"
    ]
