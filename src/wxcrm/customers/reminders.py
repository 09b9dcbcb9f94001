"""Follow-up reminders: each morning, every advisor with customers to follow up that day gets
one WeChat message saying how many and who comes first.

A customer is due to its current owner on the Beijing day its latest follow-up planned the
next one for: a later follow-up supersedes an older plan, with a next date or without one
(the advisor who called early and set no new date has nothing left to do). Customers in the
public pool are due to nobody.

Every delivery worker runs the job every few minutes; it sends nothing before the configured
time, and then one message per advisor per day whatever the number of workers or runs: an
advisor's row is locked while its reminder is decided, and the reminder's key names the
advisor and the day.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import structlog
from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from wxcrm.core import clock
from wxcrm.core.db import Database
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.models import Customer, FollowUp
from wxcrm.notifications.notify import Recipient, tell_advisor
from wxcrm.notifications.repository import NotificationRepository
from wxcrm.notifications.templates import TemplateName
from wxcrm.users.models import User

log = structlog.get_logger(__name__)

EVENT = "follow_up_reminder"
# The message opens the first due customer's page: the one page of the staff mini program we
# know exists (a page it lacks makes WeChat refuse the whole message, 41030).
CUSTOMER_PAGE = "pages/customer/detail"
# Advisors decided per transaction: SQLite's one writer is held this long only.
_BATCH = 200


@dataclass(frozen=True)
class DueCustomer:
    customer_id: str
    name: str
    next_follow_up_at: datetime


def reminder_key(advisor_id: str, now: datetime) -> str:
    return f"{EVENT}:{advisor_id}:{clock.business_day(now).isoformat()}"


def reminder_time_passed(settings: Settings, now: datetime) -> bool:
    """Whether today's reminders are due: the configured Beijing time has come."""
    return now.astimezone(clock.SHANGHAI).time() >= settings.follow_up_reminder_time


def due_on(day: date) -> Select[str | None, str, str, datetime | None]:
    """The customers due on a Beijing `day` (owner, id, name, planned time): those whose
    latest follow-up plans the next one that day, and who have an owner. The one rule for
    the reminders and for today's to-do count."""
    start, end = clock.day_start(day), clock.day_start(day + timedelta(days=1))
    later = aliased(FollowUp)
    superseded = exists().where(
        later.customer_id == FollowUp.customer_id,
        or_(
            later.created_at > FollowUp.created_at,
            and_(later.created_at == FollowUp.created_at, later.id > FollowUp.id),
        ),
    )
    return (
        select(Customer.owner_id, Customer.id, Customer.name, FollowUp.next_follow_up_at)
        .join(Customer, Customer.id == FollowUp.customer_id)
        .where(
            FollowUp.next_follow_up_at >= start,
            FollowUp.next_follow_up_at < end,
            Customer.owner_id.is_not(None),
            ~superseded,
        )
    )


async def due_today(session: AsyncSession, now: datetime) -> dict[str, list[DueCustomer]]:
    """The customers due on `now`'s Beijing day, per owner, earliest planned first."""
    rows = await session.execute(
        due_on(clock.business_day(now)).order_by(
            Customer.owner_id, FollowUp.next_follow_up_at, Customer.id
        )
    )
    due: dict[str, list[DueCustomer]] = {}
    for owner_id, customer_id, name, next_at in rows.all():
        if owner_id is not None and next_at is not None:
            due.setdefault(owner_id, []).append(DueCustomer(customer_id, name, next_at))
    return due


async def send_follow_up_reminders(
    database: Database, settings: Settings, now: datetime | None = None
) -> int:
    """Queue today's reminder of every advisor with customers due who has none yet; returns
    how many were queued (skipped ones included: they say why nothing was sent)."""
    now = now or utcnow()
    if not reminder_time_passed(settings, now):
        return 0
    async with database.reader() as session:
        due = await due_today(session, now)
        # Once the day's reminders are out, later runs end here, taking no write lock.
        told = await _already_reminded(session, due.keys(), now)
    owners = sorted(set(due) - told)
    reminded = 0
    for first in range(0, len(owners), _BATCH):
        async with database.writer() as session:
            reminded += await _remind(session, settings, owners[first : first + _BATCH], due, now)
            await session.commit()
    if reminded:
        log.info("follow-up reminders queued", count=reminded)
    return reminded


async def _already_reminded(
    session: AsyncSession, advisor_ids: Collection[str], now: datetime
) -> set[str]:
    """Which of these advisors have today's reminder queued already (skipped ones too)."""
    if not advisor_ids:
        return set()
    keys = {reminder_key(advisor_id, now): advisor_id for advisor_id in advisor_ids}
    told = await NotificationRepository(session).already_told(
        event=EVENT,
        advisor_ids=advisor_ids,
        fold_keys=keys.keys(),
        # The keys name the day, so only today's can match: two days back is bound enough.
        since=utcnow() - timedelta(days=2),
    )
    return {keys[key] for key in told}


async def _remind(
    session: AsyncSession,
    settings: Settings,
    owners: Sequence[str],
    due: dict[str, list[DueCustomer]],
    now: datetime,
) -> int:
    # Each advisor decided by one run at a time: a concurrent run passes over the rows this
    # one holds, and once this one commits its reminders' keys keep any run from another.
    advisors = (
        await session.execute(
            select(User.id, User.openid)
            .where(User.id.in_(owners), User.is_active.is_(True))
            .with_for_update(key_share=True, skip_locked=True)
        )
    ).all()
    if not advisors:
        return 0
    told = await _already_reminded(session, [advisor_id for advisor_id, _ in advisors], now)
    reminded = 0
    for advisor_id, openid in advisors:
        if advisor_id in told:
            continue
        customers = due[advisor_id]
        first = customers[0]
        queued = await tell_advisor(
            session,
            settings,
            Recipient(advisor_id, openid),
            event=EVENT,
            template=TemplateName.follow_up_reminder,
            values={
                "title": f"今日有{len(customers)}位客户待跟进",
                "count": len(customers),
                "customer_name": first.name,
                "date": clock.business_day(now).isoformat(),
            },
            page=f"{CUSTOMER_PAGE}?id={first.customer_id}",
            fold_key=reminder_key(advisor_id, now),
            fold_window=timedelta(days=1),
        )
        if not queued.folded:
            reminded += 1
    return reminded
