"""Queries of the notifications view."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.notifications.models import Notification, NotificationAttempt, NotificationStatus

# The states that still need attention: the health check's backlog, by these keys.
WATCHED = (NotificationStatus.pending, NotificationStatus.sending, NotificationStatus.failed)


class NotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self,
        *,
        status: str | None,
        advisor_id: str | None,
        event: str | None,
        offset: int,
        limit: int,
        created_from: datetime | None = None,
        created_before: datetime | None = None,
    ) -> tuple[Sequence[Notification], int]:
        """One page, newest first, and how many match; `created_from` inclusive,
        `created_before` exclusive (the console's date range)."""
        filters = []
        if status is not None:
            filters.append(Notification.status == status)
        if advisor_id is not None:
            filters.append(Notification.advisor_id == advisor_id)
        if event is not None:
            filters.append(Notification.event == event)
        if created_from is not None:
            filters.append(Notification.created_at >= created_from)
        if created_before is not None:
            filters.append(Notification.created_at < created_before)
        total = await self.session.scalar(
            select(func.count()).select_from(Notification).where(*filters)
        )
        rows = await self.session.scalars(
            select(Notification)
            .where(*filters)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return rows.all(), int(total or 0)

    async def get(self, notification_id: str, *, for_update: bool = False) -> Notification | None:
        query = select(Notification).where(Notification.id == notification_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def attempts(self, notification_id: str) -> Sequence[NotificationAttempt]:
        rows = await self.session.scalars(
            select(NotificationAttempt)
            .where(NotificationAttempt.notification_id == notification_id)
            .order_by(NotificationAttempt.started_at, NotificationAttempt.number)
        )
        return rows.all()

    async def already_told(
        self,
        *,
        event: str,
        advisor_ids: Collection[str],
        fold_keys: Collection[str],
        since: datetime,
    ) -> set[str]:
        """Which of `fold_keys` an `event` to one of `advisor_ids` has been queued under since
        `since`, in any state (a skipped one too: it was decided, and said why)."""
        rows = await self.session.scalars(
            select(Notification.fold_key).where(
                Notification.event == event,
                Notification.advisor_id.in_(advisor_ids),
                Notification.fold_key.in_(list(fold_keys)),
                # The bound lets the (advisor, created) index skip older notifications.
                Notification.created_at >= since,
            )
        )
        return {key for key in rows if key is not None}

    async def backlog(self, *, advisor_id: str | None = None) -> dict[str, int]:
        """How many rows are in each state that still needs attention: all of them, or one
        advisor's."""
        filters: list[ColumnElement[bool]] = [
            Notification.status.in_([status.value for status in WATCHED])
        ]
        if advisor_id is not None:
            filters.append(Notification.advisor_id == advisor_id)
        rows = await self.session.execute(
            select(Notification.status, func.count()).where(*filters).group_by(Notification.status)
        )
        counts = {status.value: 0 for status in WATCHED}
        counts.update({str(status): int(count) for status, count in rows.all()})
        return counts

    async def oldest_due_at(self, now: datetime) -> datetime | None:
        """Since when the longest-waiting message due for delivery has been due (pending
        and its time come, or being sent); None when none is. A retry waiting out its
        backoff is not due yet, and a message staff retry is due from the retry on."""
        due = or_(
            and_(
                Notification.status == NotificationStatus.pending.value,
                Notification.scheduled_at <= now,
            ),
            Notification.status == NotificationStatus.sending.value,
        )
        return await self.session.scalar(select(func.min(Notification.scheduled_at)).where(due))

    async def last_sent(self, advisor_ids: Collection[str]) -> dict[str, datetime]:
        """When each of these advisors was last sent a message (advisors never sent one
        are left out)."""
        if not advisor_ids:
            return {}
        rows = await self.session.execute(
            select(Notification.advisor_id, func.max(Notification.sent_at))
            .where(
                Notification.advisor_id.in_(list(advisor_ids)),
                Notification.status == NotificationStatus.sent.value,
            )
            .group_by(Notification.advisor_id)
        )
        return {str(advisor): sent for advisor, sent in rows.all() if sent is not None}
