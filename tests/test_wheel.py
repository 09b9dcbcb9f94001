"""The built wheel, installed away from the checkout, migrates a new database on its own."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from contextlib import closing
from pathlib import Path

from alembic.script import ScriptDirectory

from wxcrm.models import Base

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = ROOT / "src" / "wxcrm" / "migrations"
# A cold build and install on a slow machine; the test checks behaviour, never speed.
TIMEOUT = 600


def run(args: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_installed_wheel_migrates_a_new_sqlite_database(tmp_path: Path) -> None:
    pinned = ROOT / ".tools" / "bin" / "uv"
    uv = str(pinned) if pinned.exists() else shutil.which("uv")
    assert uv, "uv is missing: `make install` puts the pinned one in .tools/bin"
    # Nothing of the checkout may leak into the installed program.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DATABASE_URL"}
    }
    # `make install` leaves the build backend and every locked package in uv's cache:
    # offline, the test never depends on the network.
    env["UV_PYTHON_DOWNLOADS"] = "never"
    offline = "--offline"

    dist = tmp_path / "dist"
    run([uv, "build", offline, "--wheel", "--out-dir", str(dist)], cwd=ROOT, env=env)
    (wheel,) = dist.glob("wxcrm-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("wxcrm/migrations/")}
    expected = {
        f"wxcrm/{path.relative_to(MIGRATIONS.parent).as_posix()}"
        for path in MIGRATIONS.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert shipped == expected
    assert "wxcrm/migrations/script.py.mako" in shipped

    # A bare `uv pip install <wheel>` would resolve against the index; installing the locked
    # set first lets the wheel's own requirements be checked offline, on the tested versions.
    lock = tmp_path / "pylock.toml"
    export = [uv, "export", offline, "--frozen", "--no-dev", "--no-emit-project"]
    run([*export, "--format", "pylock.toml", "--output-file", str(lock)], cwd=ROOT, env=env)
    venv = tmp_path / "venv"
    python = str(venv / "bin" / "python")
    run([uv, "venv", offline, "--python", sys.executable, str(venv)], cwd=tmp_path, env=env)
    run([uv, "pip", "install", offline, "--python", python, "-r", str(lock)], cwd=tmp_path, env=env)
    run([uv, "pip", "install", offline, "--python", python, str(wheel)], cwd=tmp_path, env=env)

    work = tmp_path / "work"
    work.mkdir()
    location = run([python, "-c", "import wxcrm; print(wxcrm.__file__)"], cwd=work, env=env)
    assert Path(location.strip()).is_relative_to(venv)

    database = tmp_path / "new.db"
    output = run(
        [str(venv / "bin" / "wxcrm"), "migrate"],
        cwd=work,
        env={**env, "DATABASE_URL": f"sqlite+aiosqlite:///{database}"},
    )
    assert "database is at the newest schema" in output

    with closing(sqlite3.connect(database)) as connection:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        versions = [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]
    assert {"users", "customers", "notifications", "wechat_push_nonces"} <= tables
    assert set(Base.metadata.tables) <= tables
    assert versions == [ScriptDirectory(str(MIGRATIONS)).get_current_head()]
