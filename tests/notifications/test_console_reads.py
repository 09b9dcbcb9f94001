"""The reads behind the console's 通知 page: who sees which page of the log, the date range,
each advisor's subscriptions and last send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE
from tests.factories import make_user, new_openid
from tests.notifications.conftest import action_payload
from wxcrm.notifications import service
from wxcrm.notifications.models import Notification
from wxcrm.notifications.repository import NotificationRepository
from wxcrm.notifications.subscriptions import subscriptions_of
from wxcrm.users.models import Role, User

DAY = datetime(2024, 3, 1, 12, tzinfo=UTC)


async def add(
    session: AsyncSession,
    advisor: User,
    status: str,
    created: datetime,
    sent: datetime | None = None,
) -> Notification:
    row = Notification(
        event="customer_action",
        channel="direct",
        advisor_id=advisor.id,
        payload=action_payload(),
        status=status,
        created_at=created,
        sent_at=sent,
    )
    session.add(row)
    await session.flush()
    return row


async def test_an_advisor_pages_only_its_own_whatever_it_asks(session: AsyncSession) -> None:
    manager = await make_user(session, Role.manager)
    one, two = await make_user(session), await make_user(session)
    mine = await add(session, one, "failed", DAY)
    theirs = await add(session, two, "failed", DAY)

    rows, total = await service.page_for(
        session, one, status=None, advisor_id=two.id, event=None, offset=0, limit=20
    )
    assert [row.id for row in rows] == [mine.id] and total == 1
    rows, total = await service.page_for(
        session, manager, status="failed", advisor_id=two.id, event=None, offset=0, limit=20
    )
    assert [row.id for row in rows] == [theirs.id] and total == 1


async def test_a_date_range_takes_its_start_and_leaves_its_end(session: AsyncSession) -> None:
    advisor = await make_user(session)
    await add(session, advisor, "sent", DAY - timedelta(seconds=1))
    start = await add(session, advisor, "sent", DAY)
    await add(session, advisor, "sent", DAY + timedelta(days=1))
    rows, total = await NotificationRepository(session).page(
        status=None,
        advisor_id=advisor.id,
        event=None,
        offset=0,
        limit=20,
        created_from=DAY,
        created_before=DAY + timedelta(days=1),
    )
    assert [row.id for row in rows] == [start.id] and total == 1


async def test_each_advisors_last_send_and_subscriptions(session: AsyncSession) -> None:
    sent = await make_user(session, openid=new_openid(), credits=3)
    never = await make_user(session)
    await add(session, sent, "sent", DAY, sent=DAY)
    await add(session, sent, "sent", DAY, sent=DAY + timedelta(hours=2))
    await add(session, sent, "failed", DAY + timedelta(days=1))
    await add(session, never, "skipped", DAY)

    last = await NotificationRepository(session).last_sent([sent.id, never.id])
    assert last == {sent.id: DAY + timedelta(hours=2)}
    [subscription] = await subscriptions_of(session, [sent.id, never.id])
    assert (subscription.advisor_id, subscription.template_id) == (sent.id, ACTION_TEMPLATE)
    assert subscription.credits == 3
    assert await subscriptions_of(session, []) == []
