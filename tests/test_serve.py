"""`wxcrm serve` starts a real server that migrates its database and answers health checks."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from alembic.script import ScriptDirectory

from tests.live import migrate_database
from wxcrm.core.migrations import alembic_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_starts_on_sqlite_with_embedded_defaults(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY"}}
    server = subprocess.Popen(
        [sys.executable, "-m", "wxcrm", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response is not None, "the server did not answer within 30 s"
        assert response.status_code == 200
        assert response.json()["success"] is True
        assert (tmp_path / "data" / "wxcrm.db").exists()
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=15)
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    assert server.returncode in (0, -15), output
    assert "Application shutdown complete" in output
    assert "generated a development key" in output
    assert (tmp_path / "data" / ".secret_key").read_text().strip() not in output


def api_processes(pid: int) -> list[str]:
    """The processes uvicorn's supervisor `pid` spawned to serve (not its resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_serve_with_two_workers_runs_two_api_processes_on_one_port(tmp_path: Path) -> None:
    port = free_port()
    database = tmp_path / "wxcrm.db"
    metrics_dir = tmp_path / "metrics"  # made by the processes
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "SECRET_KEY": "serve-test-secret-key-serve-test-secret-key",
        "LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "wxcrm", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        started: list[str] = []
        while time.monotonic() < deadline and len(started) < 2:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    started = api_processes(server.pid)
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert len(started) == 2, "two API processes did not start within 60 s"
        # Each answers on the shared port: new connections land on either.
        statuses = {
            httpx.get(f"http://127.0.0.1:{port}/api/health/live", timeout=5).status_code
            for _ in range(20)
        }
        assert statuses == {200}
        # Whichever process answers the scrape counts both processes' requests: each
        # counts into a file of its own in the shared directory.
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        live = 'wxcrm_http_requests_total{method="GET",route="/api/health/live",status="200"}'
        assert f"{live} 20.0" in metrics.splitlines()
        assert {f"counter_{pid}.db" for pid in started} <= {
            path.name for path in metrics_dir.iterdir()
        }
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    # Migrated once by the command, before the processes started; each then started its app.
    assert output.count('"started"') == 2, output
    tables = {
        row[0]
        for row in sqlite3.connect(database).execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert {"customers", "alembic_version"} <= tables


def wxcrm_migrate(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wxcrm", "migrate", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_takes_the_schema_back_for_a_rollback_and_forward_again(tmp_path: Path) -> None:
    database = tmp_path / "rollback.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{database}", "LOG_LEVEL": "WARNING"}
    asyncio.run(migrate_database(env))
    # The release before the newest migration: the bigram table goes with its migration.
    back = wxcrm_migrate(env, "--down-to", "6c1e9a2f4b83")
    assert back.returncode == 0, back.stderr
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert back.stdout.strip() == (
        f"database is at 6c1e9a2f4b83; the newest schema of this release is {head}"
    )
    tables = {
        row[0]
        for row in sqlite3.connect(database).execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert "customers" in tables and "search_customer_name_bigrams" not in tables
    forward = wxcrm_migrate(env)
    assert forward.stdout.strip() == f"database is at the newest schema ({head})"


def test_migrate_brings_an_empty_database_to_the_newest_schema(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    result = subprocess.run(
        [sys.executable, "-m", "wxcrm", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "newest schema" in result.stdout
    tables = {
        row[0]
        for row in sqlite3.connect(database).execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert {"users", "customers", "notifications", "wechat_tokens"} <= tables


def test_serve_refuses_to_start_in_production_without_its_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "WXCRM_"))}
    env |= {
        "WXCRM_ENV": "production",
        "SECRET_KEY": "a-real-signing-key-of-the-deployment",
        "WECHAT_APP_SECRET": "a-real-app-secret",
        "DATABASE_URL": "postgresql+asyncpg://wxcrm:db-password-2@127.0.0.1:9/wxcrm",
    }
    result = subprocess.run(
        [sys.executable, "-m", "wxcrm", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: configuration: WXCRM_ENV=production needs ")
    for named in ("WECHAT_APP_ID", "RATE_LIMIT_STORAGE_URL", "WECHAT_TEMPLATE_CUSTOMER_ACTION"):
        assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert "db-password-2" not in result.stdout + result.stderr
