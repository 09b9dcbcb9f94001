"""首页's numbers: counted in the database (GROUP BY, conditional counts), never by walking
customers in Python, over the customers the user may see (an advisor's own; everyone's for
managers and admins).

A period is a run of Beijing days. Its figures are compared with the previous period of the
same length, the days just before it. The breakdowns (status, level by source, each owner's
funnel) are of the period's new customers: one cohort, read through the created-at index, so
a period of a month costs a month of rows, not the whole book.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core import clock
from wxcrm.customers.models import Customer, FollowUp
from wxcrm.customers.permissions import visible_to
from wxcrm.customers.records.filters import (
    SIGNED,
    FollowUpStatus,
    count_where,
    follow_up_status,
)
from wxcrm.customers.reminders import due_on
from wxcrm.users.models import User

# The 跟进状态 values of a customer its owner has not followed up yet.
NOT_FOLLOWED_UP = (
    FollowUpStatus.new_not_followed_up.value,
    FollowUpStatus.transferred_not_followed_up.value,
)


class Preset(StrEnum):
    today = "today"
    week = "week"
    month = "month"
    last_30_days = "30d"


PRESET_LABELS = {
    Preset.today: "今日",
    Preset.week: "本周",
    Preset.month: "本月",
    Preset.last_30_days: "近30天",
}


@dataclass(frozen=True)
class Period:
    """Beijing days `first` to `last`, both included."""

    first: date
    last: date

    @classmethod
    def of(cls, preset: Preset, today: date) -> Period:
        """A preset's days, up to and including `today`; weeks start on Monday."""
        first = {
            Preset.today: today,
            Preset.week: today - timedelta(days=today.weekday()),
            Preset.month: today.replace(day=1),
            Preset.last_30_days: today - timedelta(days=29),
        }[preset]
        return cls(first, today)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one begins."""
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1))

    @property
    def start(self) -> datetime:
        return clock.day_start(self.first)

    @property
    def end(self) -> datetime:
        """The first moment after the period (exclusive)."""
        return clock.day_start(self.last + timedelta(days=1))

    def holds(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)


@dataclass(frozen=True)
class Change:
    """A figure of this period and of the previous one."""

    current: int
    previous: int

    @property
    def delta(self) -> int:
        return self.current - self.previous


@dataclass(frozen=True)
class Overview:
    total: Change  # customers as of each period's end
    new: Change  # customers made in the period
    signed: Change  # customers who became 已签约 in the period (signed_at)
    waiting: Change  # the period's new customers their owner has not followed up yet


@dataclass
class OwnerFunnel:
    """One owner's share of the period's new customers: by lead level, and how many of them
    are 已签约 now."""

    owner_id: str | None
    leads: int = 0
    signed: int = 0
    levels: dict[str | None, int] = field(default_factory=dict)

    @property
    def conversion(self) -> float | None:
        """Signed out of leads, or None without leads."""
        return self.signed / self.leads if self.leads else None


@dataclass(frozen=True)
class Breakdown:
    """The period's new customers by contract status, by lead source and level, by owner."""

    by_status: dict[str, int]
    by_source_level: dict[str, dict[str | None, int]]
    funnel: dict[str | None, OwnerFunnel]

    @property
    def by_level(self) -> dict[str | None, int]:
        levels: dict[str | None, int] = {}
        for counts in self.by_source_level.values():
            for level, count in counts.items():
                levels[level] = levels.get(level, 0) + count
        return levels

    @property
    def by_source(self) -> dict[str, int]:
        return {source: sum(counts.values()) for source, counts in self.by_source_level.items()}


@dataclass(frozen=True)
class TodoItem:
    customer_id: str
    name: str
    owner_id: str | None
    # When the follow-up is due, or when the customer came in.
    at: datetime
    follow_up_status: str | None = None


def _waiting() -> ColumnElement[bool]:
    """An owned customer its owner has not followed up (the list's 跟进状态 rule)."""
    return and_(Customer.owner_id.is_not(None), follow_up_status().in_(NOT_FOLLOWED_UP))


async def overview(session: AsyncSession, user: User, period: Period) -> Overview:
    """The four cards' figures, each with the previous period's."""
    before = period.previous()
    visible = visible_to(user)
    everyone = int(
        await session.scalar(select(func.count()).select_from(Customer).where(visible)) or 0
    )
    # The customers made since the previous period began, in one pass of the created index.
    made = (
        await session.execute(
            select(
                count_where(period.holds(Customer.created_at)),
                count_where(before.holds(Customer.created_at)),
                count_where(Customer.created_at >= period.end),
                count_where(and_(period.holds(Customer.created_at), _waiting())),
                count_where(and_(before.holds(Customer.created_at), _waiting())),
            ).where(visible, Customer.created_at >= before.start)
        )
    ).one()
    new, new_before, after, waiting, waiting_before = (int(n) for n in made)
    signed = (
        await session.execute(
            select(
                count_where(period.holds(Customer.signed_at)),
                count_where(before.holds(Customer.signed_at)),
            ).where(visible, Customer.signed_at >= before.start, Customer.signed_at < period.end)
        )
    ).one()
    total = everyone - after
    return Overview(
        total=Change(total, total - new),
        new=Change(new, new_before),
        signed=Change(int(signed[0]), int(signed[1])),
        waiting=Change(waiting, waiting_before),
    )


async def breakdown(session: AsyncSession, user: User, period: Period) -> Breakdown:
    """The period's new customers counted three ways, each by one GROUP BY."""
    cohort = (visible_to(user), period.holds(Customer.created_at))
    statuses = await session.execute(
        select(Customer.contract_status, func.count())
        .where(*cohort)
        .group_by(Customer.contract_status)
    )
    sources = await session.execute(
        select(Customer.lead_source, Customer.lead_level, func.count())
        .where(*cohort)
        .group_by(Customer.lead_source, Customer.lead_level)
    )
    by_source_level: dict[str, dict[str | None, int]] = {}
    for source, level, count in sources.all():
        by_source_level.setdefault(source, {})[level] = int(count)
    owners = await session.execute(
        select(
            Customer.owner_id,
            Customer.lead_level,
            func.count(),
            count_where(Customer.contract_status == SIGNED),
        )
        .where(*cohort)
        .group_by(Customer.owner_id, Customer.lead_level)
    )
    funnel: dict[str | None, OwnerFunnel] = {}
    for owner_id, level, count, signed in owners.all():
        row = funnel.setdefault(owner_id, OwnerFunnel(owner_id))
        row.leads += int(count)
        row.signed += int(signed)
        row.levels[level] = int(count)
    return Breakdown(
        by_status={status: int(count) for status, count in statuses.all()},
        by_source_level=by_source_level,
        funnel=funnel,
    )


async def due_today(
    session: AsyncSession, user: User, today: date, limit: int
) -> tuple[int, Sequence[TodoItem]]:
    """How many customers are due to be followed up today (the reminders' rule), and the
    first `limit` of them, earliest planned first."""
    due = due_on(today).where(visible_to(user))
    rows = await session.execute(due.order_by(FollowUp.next_follow_up_at, Customer.id).limit(limit))
    # due_on bounds the planned time: it is never None here.
    items = [
        TodoItem(customer_id, name, owner_id, cast(datetime, at))
        for owner_id, customer_id, name, at in rows.all()
    ]
    if len(items) < limit:  # all of them: no need to count
        return len(items), items
    count = await session.scalar(select(func.count()).select_from(due.subquery()))
    return int(count or 0), items


async def waiting(
    session: AsyncSession, user: User, period: Period, limit: int
) -> Sequence[TodoItem]:
    """The newest of the period's customers their owner has not followed up yet."""
    status = follow_up_status()
    rows = await session.execute(
        select(Customer.id, Customer.name, Customer.owner_id, Customer.created_at, status)
        .where(
            visible_to(user),
            period.holds(Customer.created_at),
            Customer.owner_id.is_not(None),
            status.in_(NOT_FOLLOWED_UP),
        )
        .order_by(Customer.created_at.desc(), Customer.id.desc())
        .limit(limit)
    )
    return [
        TodoItem(customer_id, name, owner_id, created_at, state)
        for customer_id, name, owner_id, created_at, state in rows.all()
    ]
