"""Queueing a notification: the one function every domain calls, inside its own transaction.

The row is written in the caller's transaction, so a change that rolls back never notifies
anyone, and one that commits always will (the delivery worker takes it from there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.aftercommit import when_committed
from wxcrm.core.metrics import DELIVERIES, errcode_label
from wxcrm.core.models import utcnow
from wxcrm.notifications.models import Notification, NotificationStatus

log = structlog.get_logger(__name__)

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


@dataclass(frozen=True)
class Outgoing:
    """One notification to queue; see `queue_notification` for what each part does."""

    event: str
    channel: Channel
    payload: dict[str, Any]
    advisor_id: str | None = None
    template_id: str | None = None
    fold_key: str | None = None
    fold_window: timedelta | None = None
    scheduled_at: datetime | None = None
    skip_reason: str | Callable[[], Awaitable[str | None]] | None = None


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
    outgoing = Outgoing(
        event, channel, payload, advisor_id, template_id, fold_key, fold_window, scheduled_at,
        skip_reason,
    )  # fmt: skip
    return (await queue_notifications(session, [outgoing]))[0]


# Tries at a batch whose new rows another transaction's rows with the same fold keys beat.
_FOLD_RACE_TRIES = 3


async def queue_notifications(session: AsyncSession, batch: Sequence[Outgoing]) -> list[Queued]:
    """Queue each of `batch`, in order, as `queue_notification` would one after the other:
    one statement to find what they fold into, one to insert, one to update.

    A later event of the batch folds into a row an earlier one added. Should a concurrent
    transaction (another process) queue a pending row of the same fold key first, the
    batch is queued again folding into it.
    """
    for _ in range(_FOLD_RACE_TRIES - 1):
        try:
            async with session.begin_nested():
                return await _queue(session, batch)
        except IntegrityError as error:
            if not _is_fold_key_race(error):
                raise
    async with session.begin_nested():
        return await _queue(session, batch)


def _is_fold_key_race(error: IntegrityError) -> bool:
    return "fold_key" in str(error.orig)


async def _queue(session: AsyncSession, batch: Sequence[Outgoing]) -> list[Queued]:
    now = utcnow()
    earlier = await _foldable(session, batch, now)
    added: dict[str, Notification] = {}  # pending rows this batch added, by fold key
    queued: list[Queued] = []
    for outgoing in batch:
        into = _fold_target(outgoing, earlier, added, now)
        if into is not None:
            into.fold_count += 1
            if into.status == NotificationStatus.pending.value:
                into.payload = outgoing.payload  # the message says what happened last
            queued.append(Queued(into, folded=True))
            continue
        reason = outgoing.skip_reason
        if callable(reason):
            reason = await reason()
        notification = Notification(
            event=outgoing.event,
            channel=outgoing.channel.value,
            advisor_id=outgoing.advisor_id,
            template_id=outgoing.template_id,
            payload=outgoing.payload,
            # Kept on a skipped row so the key records the event; skipped rows are never
            # folded into.
            fold_key=outgoing.fold_key,
            fold_count=1,  # counted on below, before the row is flushed
            status=(NotificationStatus.pending if reason is None else NotificationStatus.skipped),
            skip_reason=reason,
            scheduled_at=outgoing.scheduled_at or now,
        )
        if reason is None and outgoing.fold_key is not None:
            added[outgoing.fold_key] = notification
        session.add(notification)
        queued.append(Queued(notification, folded=False))
    await session.flush()
    if any(not q.folded and not q.skipped for q in queued):
        await wake_workers(session)
    for entry in queued:
        _said_once_committed(session, entry)
    return queued


def _said_once_committed(session: AsyncSession, entry: Queued) -> None:
    """The notification's first log line (and, when it is skipped already, its count),
    once it is committed: an id the log names is one the outbox holds."""
    row = entry.notification
    facts = {
        "notification_id": row.id,
        "notification_event": row.event,
        "advisor_id": row.advisor_id,
    }
    if entry.folded:
        when_committed(session, lambda: log.info("notification folded", **facts))
    elif entry.skipped:
        reason = row.skip_reason

        def skipped() -> None:
            DELIVERIES.labels("skipped", errcode_label(None)).inc()
            log.info("notification skipped", reason=reason, **facts)

        when_committed(session, skipped)
    else:
        when_committed(session, lambda: log.info("notification queued", **facts))


_ACTIVE = (NotificationStatus.pending, NotificationStatus.sending, NotificationStatus.sent)


async def _foldable(
    session: AsyncSession, batch: Sequence[Outgoing], now: datetime
) -> dict[str, list[Notification]]:
    """The rows the batch's events may fold into, by fold key, newest first, locked.

    Without a window only a pending row takes a fold; with one, any active row created
    inside it. One query for all keys, over the widest window; `_fold_target` picks.
    """
    keys = {outgoing.fold_key for outgoing in batch if outgoing.fold_key is not None}
    if not keys:
        return {}
    windows = [o.fold_window for o in batch if o.fold_key is not None and o.fold_window]
    recent = Notification.status == NotificationStatus.pending.value
    if windows:
        recent = or_(recent, Notification.created_at >= now - max(windows))
    rows = await session.scalars(
        select(Notification)
        .where(
            Notification.fold_key.in_(sorted(keys)),
            Notification.status.in_([s.value for s in _ACTIVE]),
            recent,
        )
        .order_by(Notification.created_at.desc())
        .with_for_update()
    )
    found: dict[str, list[Notification]] = {}
    for row in rows:
        found.setdefault(row.fold_key or "", []).append(row)
    return found


def _fold_target(
    outgoing: Outgoing,
    earlier: dict[str, list[Notification]],
    added: dict[str, Notification],
    now: datetime,
) -> Notification | None:
    key = outgoing.fold_key
    if key is None:
        return None
    if key in added:
        return added[key]
    for row in earlier.get(key, ()):
        if row.status == NotificationStatus.pending.value:
            return row
        if outgoing.fold_window is not None and row.created_at >= now - outgoing.fold_window:
            return row
    return None


async def wake_workers(session: AsyncSession) -> None:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})
