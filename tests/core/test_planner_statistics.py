"""SQLite plans by the statistics ANALYZE leaves: the server refreshes them (at start and
hourly), and with them a phone-prefix search reads the phone's index, not every row."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, text

from wxcrm.core.db import Database, refresh_planner_statistics
from wxcrm.core.ids import new_id
from wxcrm.core.migrations import migrate
from wxcrm.core.models import utcnow
from wxcrm.customers.models import Customer

# As the search sends it: the bounds as parameters, which SQLite plans without seeing.
PREFIX_SEARCH = (
    "EXPLAIN QUERY PLAN SELECT id FROM customers"
    " WHERE phone >= :low AND phone < :high OR customer_no >= :no_low AND customer_no < :no_high"
    " ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset"
)
BOUNDS = {
    **{"low": "1390001", "high": "1390002", "no_low": "CUS1390001", "no_high": "CUS1390002"},
    **{"limit": 1001, "offset": 0},
}


async def test_refreshed_statistics_send_a_prefix_search_to_the_phone_index(
    tmp_path: Path,
) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'stats.db'}")
    try:
        await migrate(database.engine)
        now = utcnow()
        async with database.writer() as session:
            await session.execute(
                insert(Customer),
                [
                    {
                        "id": new_id(),
                        "customer_no": f"CUS{n:011d}",
                        "name": f"客户{n}",
                        "phone": f"139{n:08d}",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in range(3_000)
                ],
            )
            await session.commit()
        async with database.reader() as session:
            before = " ".join(row[-1] for row in await session.execute(text(PREFIX_SEARCH), BOUNDS))
        await refresh_planner_statistics(database)
        async with database.reader() as session:
            analysed = await session.scalar(
                text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'customers'")
            )
            after = " ".join(row[-1] for row in await session.execute(text(PREFIX_SEARCH), BOUNDS))
        assert analysed
        assert "SCAN customers" in before  # the whole newest-first index, without statistics
        assert "MULTI-INDEX OR" in after and "SCAN customers" not in after
    finally:
        await database.dispose()
