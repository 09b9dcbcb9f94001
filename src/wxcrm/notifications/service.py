"""The rules of the notifications view: who sees which notification, and retrying one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.errors import Conflict, NotFound
from wxcrm.core.models import utcnow
from wxcrm.notifications.models import Notification, NotificationStatus
from wxcrm.notifications.outbox import wake_workers
from wxcrm.notifications.repository import NotificationRepository
from wxcrm.users.models import User

RETRYABLE = {NotificationStatus.failed.value, NotificationStatus.skipped.value}


def visible(notification: Notification | None, user: User) -> Notification:
    # An advisor sees only its own notifications; another's is as good as missing.
    if notification is None or (not user.is_staff_manager and notification.advisor_id != user.id):
        raise NotFound("通知不存在")
    return notification


async def page_for(
    session: AsyncSession,
    user: User,
    *,
    status: str | None,
    advisor_id: str | None,
    event: str | None,
    offset: int,
    limit: int,
    created_from: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[Sequence[Notification], int]:
    """The notifications `user` may see, a page of them: an advisor's own only, whatever
    advisor was asked for (the rule of GET /api/notifications)."""
    if not user.is_staff_manager:
        advisor_id = user.id
    return await NotificationRepository(session).page(
        status=status,
        advisor_id=advisor_id,
        event=event,
        offset=offset,
        limit=limit,
        created_from=created_from,
        created_before=created_before,
    )


async def retry(session: AsyncSession, notification_id: str, user: User) -> Notification:
    """Put a failed or skipped notification back in the queue, due now, with fresh attempts.

    Whether it can be sent is decided again when a worker claims it.
    """
    repository = NotificationRepository(session)
    notification = visible(await repository.get(notification_id, for_update=True), user)
    if notification.status not in RETRYABLE:
        raise Conflict(f"只有发送失败或已跳过的通知可以重试（当前状态：{notification.status}）")
    notification.status = NotificationStatus.pending.value
    notification.attempts = 0
    notification.scheduled_at = utcnow()
    notification.skip_reason = None
    await session.flush()
    await wake_workers(session)
    return notification
