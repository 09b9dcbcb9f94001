"""Queueing: in the caller's transaction, folding repeated events into one message."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.notifications.conftest import action_payload
from wxcrm.core.models import utcnow
from wxcrm.notifications.models import Notification, NotificationStatus
from wxcrm.notifications.outbox import Channel, queue_notification


async def queue(session: AsyncSession, n: int, **kwargs: object) -> tuple[Notification, bool]:
    queued = await queue_notification(
        session,
        event="customer_action",
        channel=Channel.direct,
        payload=action_payload(n),
        **kwargs,  # type: ignore[arg-type]
    )
    return queued.notification, queued.folded


async def count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(Notification))).scalar_one())


async def test_a_queued_notification_is_pending_and_due_now(session: AsyncSession) -> None:
    notification, folded = await queue(session, 1)
    assert not folded
    assert notification.status == NotificationStatus.pending
    assert notification.attempts == 0
    assert notification.scheduled_at <= utcnow()


async def test_a_second_event_while_pending_updates_the_row(session: AsyncSession) -> None:
    first, _ = await queue(session, 1, fold_key="customer:c1:advisor:a1")
    second, folded = await queue(session, 2, fold_key="customer:c1:advisor:a1")
    assert folded and second.id == first.id
    assert second.fold_count == 2
    assert second.payload["page"].endswith("id=2")  # the latest text
    assert await count(session) == 1


async def test_different_fold_keys_make_different_rows(session: AsyncSession) -> None:
    await queue(session, 1, fold_key="k1")
    await queue(session, 2, fold_key="k2")
    await queue(session, 3)
    assert await count(session) == 3


async def test_without_a_window_a_sent_row_does_not_fold(session: AsyncSession) -> None:
    first, _ = await queue(session, 1, fold_key="k")
    first.status = NotificationStatus.sent.value
    await session.flush()
    second, folded = await queue(session, 2, fold_key="k")
    assert not folded and second.id != first.id


async def test_inside_the_window_an_event_folds_into_a_sent_message(
    session: AsyncSession,
) -> None:
    window = timedelta(minutes=10)
    first, _ = await queue(session, 1, fold_key="k", fold_window=window)
    first.status = NotificationStatus.sent.value
    await session.flush()
    again, folded = await queue(session, 2, fold_key="k", fold_window=window)
    assert folded and again.id == first.id and again.fold_count == 2
    assert again.payload["page"].endswith("id=1")  # what was sent stays as it was
    assert await count(session) == 1


async def test_after_the_window_a_new_message_is_queued(session: AsyncSession) -> None:
    window = timedelta(minutes=10)
    first, _ = await queue(session, 1, fold_key="k", fold_window=window)
    first.status = NotificationStatus.sent.value
    first.created_at = utcnow() - timedelta(minutes=11)
    await session.flush()
    later, folded = await queue(session, 2, fold_key="k", fold_window=window)
    assert not folded and later.id != first.id


async def test_a_failed_message_does_not_swallow_the_next_event(session: AsyncSession) -> None:
    window = timedelta(minutes=10)
    first, _ = await queue(session, 1, fold_key="k", fold_window=window)
    first.status = NotificationStatus.failed.value
    await session.flush()
    second, folded = await queue(session, 2, fold_key="k", fold_window=window)
    assert not folded and second.id != first.id
