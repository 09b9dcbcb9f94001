"""The outbox backlog: everyone's for the health check, one advisor's for its dashboard."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_user
from tests.notifications.test_console_reads import add
from wxcrm.notifications.repository import NotificationRepository

DAY = datetime(2024, 3, 1, 12, tzinfo=UTC)


async def test_the_backlog_counts_everyone_or_one_advisor(session: AsyncSession) -> None:
    one, two = await make_user(session), await make_user(session)
    for status in ("pending", "pending", "failed", "sent"):
        await add(session, one, status, DAY)
    for status in ("sending", "failed", "skipped"):
        await add(session, two, status, DAY)
    repository = NotificationRepository(session)

    assert await repository.backlog() == {"pending": 2, "sending": 1, "failed": 2}
    assert await repository.backlog(advisor_id=one.id) == {
        "pending": 2,
        "sending": 0,
        "failed": 1,
    }
    assert await repository.backlog(advisor_id=two.id) == {
        "pending": 0,
        "sending": 1,
        "failed": 1,
    }
