"""Queueing a notification: the one function every domain calls, inside its own transaction.

The row is written in the caller's transaction, so a change that rolls back never notifies
anyone, and one that commits always will (the delivery worker takes it from there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.models import utcnow
from wxcrm.notifications.models import Notification, NotificationStatus

# PostgreSQL workers LISTEN on this channel; NOTIFY is delivered when the transaction commits.
WAKE_CHANNEL = "wxcrm_outbox"


class Channel(StrEnum):
    direct = "direct"  # we send the subscribe message to the advisor's bound openid
    cloud = "cloud"  # the quickstartFunctions cloud function sends it


@dataclass(frozen=True)
class Queued:
    notification: Notification
    # True when the event was folded into an earlier notification instead of adding one.
    folded: bool

    @property
    def skipped(self) -> bool:
        """Nothing will be sent for it: the row was written `skipped`, saying why."""
        return self.notification.status == NotificationStatus.skipped.value


async def queue_notification(
    session: AsyncSession,
    *,
    event: str,
    channel: Channel,
    payload: dict[str, Any],
    advisor_id: str | None = None,
    template_id: str | None = None,
    fold_key: str | None = None,
    fold_window: timedelta | None = None,
    scheduled_at: datetime | None = None,
    skip_reason: str | Callable[[], Awaitable[str | None]] | None = None,
) -> Queued:
    """Queue a notification in the caller's transaction.

    With a `fold_key`, a second event while an earlier one with the same key is still
    pending updates that row (its count, and the latest payload) instead of adding one.
    With a `fold_window` too, an event inside the window of one already sent is folded
    into it and sends nothing: five clicks in ten minutes make one message.

    With a `skip_reason` (and nothing to fold into), the row is written already `skipped`:
    nothing will be sent, and the notifications view says why. Given as a function, it is
    asked only when a row is to be written: a folded event needs no answer (and, for the
    caller, no query).
    """
    if fold_key is not None:
        folded = await _fold(session, fold_key, fold_window, payload)
        if folded is not None:
            return Queued(folded, folded=True)
    if callable(skip_reason):
        skip_reason = await skip_reason()
    if skip_reason is not None:
        skipped = Notification(
            event=event,
            channel=channel.value,
            advisor_id=advisor_id,
            template_id=template_id,
            payload=payload,
            # Kept so the key records the event; skipped rows are never folded into.
            fold_key=fold_key,
            status=NotificationStatus.skipped.value,
            skip_reason=skip_reason,
        )
        session.add(skipped)
        await session.flush()
        return Queued(skipped, folded=False)
    notification = Notification(
        event=event,
        channel=channel.value,
        advisor_id=advisor_id,
        template_id=template_id,
        payload=payload,
        fold_key=fold_key,
        status=NotificationStatus.pending.value,
        scheduled_at=scheduled_at or utcnow(),
    )
    try:
        async with session.begin_nested():
            session.add(notification)
    except IntegrityError:
        # A concurrent transaction queued the same fold key first: fold into its row.
        if fold_key is None:
            raise
        folded = await _fold(session, fold_key, fold_window, payload)
        if folded is None:
            raise
        return Queued(folded, folded=True)
    await wake_workers(session)
    return Queued(notification, folded=False)


async def _fold(
    session: AsyncSession,
    fold_key: str,
    window: timedelta | None,
    payload: dict[str, Any],
) -> Notification | None:
    query = select(Notification).where(Notification.fold_key == fold_key)
    if window is not None:
        active = [NotificationStatus.pending, NotificationStatus.sending, NotificationStatus.sent]
        query = query.where(
            Notification.status.in_([s.value for s in active]),
            Notification.created_at >= utcnow() - window,
        )
    else:
        query = query.where(Notification.status == NotificationStatus.pending.value)
    existing = (
        await session.execute(
            query.order_by(Notification.created_at.desc()).limit(1).with_for_update()
        )
    ).scalar_one_or_none()
    if existing is None:
        return None
    existing.fold_count += 1
    if existing.status == NotificationStatus.pending.value:
        existing.payload = payload  # the message says what happened last
    await session.flush()
    return existing


async def wake_workers(session: AsyncSession) -> None:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})
