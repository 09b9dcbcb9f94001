"""`migrate` checks SQLite's foreign keys after it applied a revision, and not on every start
of a server whose database is up to date (the check reads every row)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from wxcrm.core.db import create_engine
from wxcrm.core.migrations import migrate


async def test_the_foreign_key_check_runs_only_when_a_revision_was_applied(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'wxcrm.db'}")
    statements: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    try:
        await migrate(engine)
        assert "PRAGMA foreign_key_check" in statements
        statements.clear()
        await migrate(engine)
        assert statements and "PRAGMA foreign_key_check" not in statements
    finally:
        await engine.dispose()
