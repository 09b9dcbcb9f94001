"""首页's numbers: periods in Beijing days against the previous period of the same length,
the four cards, the period's new customers by status, level and source and by owner, the
to-do lists — an advisor's of its own customers only."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_customer, make_user
from wxcrm.core import clock
from wxcrm.customers import dashboard
from wxcrm.customers.dashboard import Change, Period, Preset
from wxcrm.customers.models import Customer, FollowUp
from wxcrm.users.models import Role, User

# A Wednesday: its week began on Monday the 13th.
TODAY = date(2024, 5, 15)
YESTERDAY = TODAY - timedelta(days=1)


def beijing(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=clock.SHANGHAI)


def test_presets_are_beijing_days_up_to_today() -> None:
    assert Period.of(Preset.today, TODAY) == Period(TODAY, TODAY)
    assert Period.of(Preset.week, TODAY) == Period(date(2024, 5, 13), TODAY)
    assert Period.of(Preset.week, date(2024, 5, 13)) == Period(date(2024, 5, 13), date(2024, 5, 13))
    assert Period.of(Preset.month, TODAY) == Period(date(2024, 5, 1), TODAY)
    assert Period.of(Preset.last_30_days, TODAY) == Period(date(2024, 4, 16), TODAY)
    assert Period.of(Preset.last_30_days, TODAY).days == 30


def test_the_previous_period_has_the_same_length_and_ends_the_day_before() -> None:
    assert Period(TODAY, TODAY).previous() == Period(YESTERDAY, YESTERDAY)
    month = Period.of(Preset.month, TODAY)
    assert month.previous() == Period(date(2024, 4, 16), date(2024, 4, 30))
    assert month.previous().days == month.days == 15


def test_a_period_starts_and_ends_at_midnight_in_beijing() -> None:
    period = Period(TODAY, TODAY)
    assert period.start == beijing(TODAY, 0)
    assert period.end == beijing(TODAY + timedelta(days=1), 0)
    # 23:30 on the 14th in Beijing is 15:30 UTC on the 14th: yesterday, not today.
    assert not period.start <= beijing(YESTERDAY, 23, 30) < period.end


def test_a_change_is_the_current_figure_less_the_previous() -> None:
    assert Change(5, 8).delta == -3
    assert Change(12, 0).delta == 12


async def _people(session: AsyncSession) -> tuple[User, User, User]:
    return (
        await make_user(session, Role.manager, name="经理"),
        await make_user(session, name="顾问甲"),
        await make_user(session, name="顾问乙"),
    )


async def _customer(
    session: AsyncSession, owner: User | None, created: datetime, **fields: Any
) -> Customer:
    assigned = {"assigned_at": created} if owner else {"pool_entered_at": created}
    return await make_customer(session, owner, created_at=created, **assigned, **fields)


async def _follow_up(
    session: AsyncSession, customer: Customer, by: User, *, at: datetime, next_at: datetime | None
) -> None:
    session.add(
        FollowUp(
            customer_id=customer.id,
            user_id=by.id,
            method="电话",
            content="聊了需求",
            next_follow_up_at=next_at,
            created_at=at,
        )
    )
    await session.flush()


async def test_the_cards_count_this_period_against_the_previous_one(session: AsyncSession) -> None:
    manager, first, second = await _people(session)
    # Whatever else the database holds that was made before the period ended.
    before = int(
        await session.scalar(
            select(func.count()).where(Customer.created_at < Period(TODAY, TODAY).end)
        )
        or 0
    )
    # Today: three of the first advisor's (one signed today, one followed up), one of the
    # second's, one in the pool. Yesterday: two. Last month: one, signed yesterday.
    await _customer(
        session, first, beijing(TODAY, 9), contract_status="已签约", signed_at=beijing(TODAY, 11)
    )
    followed = await _customer(session, first, beijing(TODAY, 0, 5))
    await _follow_up(session, followed, first, at=beijing(TODAY, 12), next_at=None)
    await _customer(session, first, beijing(TODAY, 23, 59))
    await _customer(session, second, beijing(TODAY, 8))
    await _customer(session, None, beijing(TODAY, 8))
    await _customer(session, first, beijing(YESTERDAY, 23, 59))
    await _customer(session, second, beijing(YESTERDAY, 0, 0))
    await _customer(
        session, first, beijing(date(2024, 4, 2)), contract_status="已签约",
        signed_at=beijing(YESTERDAY, 15),
    )  # fmt: skip
    # Tomorrow's customer is after the period: not in its total.
    await _customer(session, second, beijing(TODAY + timedelta(days=1), 0, 1))

    today = Period(TODAY, TODAY)
    everyone = await dashboard.overview(session, manager, today)
    assert everyone.new == Change(5, 2)
    assert everyone.total == Change(before + 8, before + 3)
    assert everyone.signed == Change(1, 1)
    # Not followed up by their owner, signed ones and the pool's left out: today one of each
    # advisor's; yesterday both.
    assert everyone.waiting == Change(2, 2)

    mine = await dashboard.overview(session, first, today)
    assert mine.new == Change(3, 1)
    assert mine.total == Change(5, 2)
    assert mine.signed == Change(1, 1)
    assert mine.waiting == Change(1, 1)

    week = await dashboard.overview(session, second, Period.of(Preset.week, TODAY))
    assert week.new == Change(2, 0)
    assert week.total == Change(2, 0)


async def test_the_period_s_new_customers_by_status_level_source_and_owner(
    session: AsyncSession,
) -> None:
    manager, first, second = await _people(session)
    day = beijing(TODAY)
    await _customer(
        session, first, day, lead_source="美团", lead_level="A类", contract_status="已签约"
    )
    await _customer(session, first, day, lead_source="美团", lead_level="A类")
    await _customer(session, first, day, lead_source="抖音", lead_level="B类")
    await _customer(session, second, day, lead_source="美团", lead_level=None)
    await _customer(session, None, day, lead_source="抖音", lead_level="C类")
    # Before the period: counted nowhere.
    await _customer(session, second, beijing(YESTERDAY), lead_source="美团", lead_level="A类")

    split = await dashboard.breakdown(session, manager, Period(TODAY, TODAY))
    assert split.by_status == {"已签约": 1, "待定": 4}
    assert split.by_source_level == {
        "美团": {"A类": 2, None: 1},
        "抖音": {"B类": 1, "C类": 1},
    }
    assert split.by_level == {"A类": 2, None: 1, "B类": 1, "C类": 1}
    assert split.by_source == {"美团": 3, "抖音": 2}
    funnel = split.funnel
    assert set(funnel) == {first.id, second.id, None}
    assert (funnel[first.id].leads, funnel[first.id].signed) == (3, 1)
    assert funnel[first.id].levels == {"A类": 2, "B类": 1}
    assert funnel[first.id].conversion == 1 / 3
    assert (funnel[second.id].leads, funnel[second.id].signed) == (1, 0)
    assert funnel[second.id].conversion == 0
    assert funnel[None].leads == 1
    assert dashboard.OwnerFunnel("nobody").conversion is None

    own = await dashboard.breakdown(session, second, Period(TODAY, TODAY))
    assert own.by_status == {"待定": 1}
    assert own.by_source_level == {"美团": {None: 1}}
    assert set(own.funnel) == {second.id}


async def test_today_s_to_do_follows_the_reminders_and_the_follow_up_rule(
    session: AsyncSession,
) -> None:
    manager, first, second = await _people(session)
    due_early = await _customer(session, first, beijing(date(2024, 5, 1)), name="早上要打")
    due_late = await _customer(session, second, beijing(date(2024, 5, 1)), name="下午要打")
    superseded = await _customer(session, first, beijing(date(2024, 5, 1)), name="已改期")
    await _follow_up(
        session, due_early, first, at=beijing(date(2024, 5, 2)), next_at=beijing(TODAY, 9)
    )
    await _follow_up(
        session, due_late, second, at=beijing(date(2024, 5, 2)), next_at=beijing(TODAY, 15)
    )
    await _follow_up(
        session, superseded, first, at=beijing(date(2024, 5, 2)), next_at=beijing(TODAY, 10)
    )
    # A later follow-up without a next date: nothing left to do today.
    await _follow_up(session, superseded, first, at=beijing(date(2024, 5, 3)), next_at=None)

    count, due = await dashboard.due_today(session, manager, TODAY, limit=10)
    assert count == 2
    assert [item.name for item in due] == ["早上要打", "下午要打"]
    assert due[0].owner_id == first.id
    assert due[0].at == beijing(TODAY, 9)
    # Fewer shown than there are: counted all the same.
    count, due = await dashboard.due_today(session, manager, TODAY, limit=1)
    assert (count, [item.name for item in due]) == (2, ["早上要打"])
    count, due = await dashboard.due_today(session, second, TODAY, limit=10)
    assert (count, [item.name for item in due]) == (1, ["下午要打"])
    assert (await dashboard.due_today(session, first, TODAY, limit=1))[0] == 1

    older = await _customer(session, first, beijing(TODAY, 8), name="新客甲")
    newer = await _customer(session, second, beijing(TODAY, 9), name="新客乙")
    taken_back = await _customer(
        session, first, beijing(TODAY, 10), name="流转客", transfer_count=1
    )
    done = await _customer(session, first, beijing(TODAY, 11), name="已跟进")
    await _follow_up(session, done, first, at=beijing(TODAY, 12), next_at=None)
    await _customer(session, first, beijing(TODAY, 12), name="签了", contract_status="已签约")
    await _customer(session, None, beijing(TODAY, 13), name="公海的")
    # A former owner's follow-up does not count for the one who holds it now.
    handed_over = await _customer(session, second, beijing(TODAY, 14), name="转手")
    await _follow_up(session, handed_over, first, at=beijing(TODAY, 15), next_at=None)

    today = Period(TODAY, TODAY)
    waiting = await dashboard.waiting(session, manager, today, limit=10)
    assert [(item.name, item.follow_up_status) for item in waiting] == [
        ("转手", "新客未跟进"),
        ("流转客", "流转未跟进"),
        ("新客乙", "新客未跟进"),
        ("新客甲", "新客未跟进"),
    ]
    assert [item.customer_id for item in await dashboard.waiting(session, manager, today, 2)] == [
        handed_over.id,
        taken_back.id,
    ]
    assert [item.customer_id for item in await dashboard.waiting(session, first, today, 10)] == [
        taken_back.id,
        older.id,
    ]
    assert (await dashboard.overview(session, second, today)).waiting.current == 2
    # The second advisor's own list: what it holds now, not what its owner before it did.
    assert [item.customer_id for item in await dashboard.waiting(session, second, today, 10)] == [
        handed_over.id,
        newer.id,
    ]
