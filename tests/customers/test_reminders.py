"""Follow-up reminders: who is due on a Beijing day (the latest follow-up's plan, owned
customers only), nothing before the configured time, one message per advisor per day however
many workers run the job, its data fitted to the template, and skipped when it cannot go."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from tests.factories import committed_advisor, make_customer
from wxcrm.core import clock
from wxcrm.core.db import Database
from wxcrm.core.settings import Settings
from wxcrm.customers import reminders
from wxcrm.customers.models import Customer, FollowUp
from wxcrm.customers.reminders import send_follow_up_reminders
from wxcrm.jobs import scheduled_jobs
from wxcrm.notifications.models import Notification, NotificationStatus
from wxcrm.notifications.subscriptions import NO_CREDIT, NO_OPENID, NO_TEMPLATE
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.users.models import User
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.sim import SimControl

REMINDER_TEMPLATE = "tmpl-follow-up-reminder"
TODAY = clock.today()
TOMORROW = TODAY + timedelta(days=1)
YESTERDAY = TODAY - timedelta(days=1)


def beijing(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=clock.SHANGHAI)


# The job's clock on the test's day: after the default 09:00, and before it.
MORNING = beijing(TODAY, 9, 5)


@pytest.fixture
def reminder_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"wechat_template_follow_up_reminder": REMINDER_TEMPLATE})


@dataclass
class Rows:
    """Advisors, customers and follow-ups committed for the job to see (the `committed`
    fixture empties the database afterwards)."""

    database: Database

    async def advisor(self, *, bound: bool = True, credits: int = 5) -> User:
        return await committed_advisor(
            self.database, credits=credits, template_id=REMINDER_TEMPLATE, bound=bound
        )

    async def customer(
        self,
        owner: User | None,
        *plans: datetime | None,
        name: str | None = None,
        by: User | None = None,
    ) -> Customer:
        """A customer of `owner` (None: in the pool) with a follow-up per plan, oldest first,
        each planning the next one at that moment (None: no next date)."""
        async with self.database.writer() as session:
            customer = await make_customer(session, owner, name=name)
            written = beijing(YESTERDAY, 8)
            for number, plan in enumerate(plans):
                author = by or owner
                assert author is not None, "a pool customer's follow-ups need an author"
                session.add(
                    FollowUp(
                        customer_id=customer.id,
                        user_id=author.id,
                        method="电话",
                        content=f"第{number + 1}次跟进",
                        next_follow_up_at=plan,
                        created_at=written + timedelta(hours=number),
                    )
                )
            await session.commit()
            return customer

    async def reminders(self) -> list[Notification]:
        async with self.database.reader() as session:
            rows = await session.scalars(
                select(Notification)
                .where(Notification.event == reminders.EVENT)
                .order_by(Notification.created_at)
            )
            return list(rows)

    async def reminder_of(self, advisor: User) -> Notification:
        [row] = [row for row in await self.reminders() if row.advisor_id == advisor.id]
        return row


@pytest.fixture
def rows(committed: Database) -> Rows:
    return Rows(committed)


def test_workers_run_the_reminder_job_every_few_minutes() -> None:
    [job] = [job for job in scheduled_jobs() if job.name == "follow_up_reminders"]
    assert job.run is send_follow_up_reminders
    assert 0 < job.every_seconds <= 5 * 60


def test_the_reminder_time_is_a_beijing_hh_mm(settings: Settings) -> None:
    assert settings.follow_up_reminder_time == time(9, 0)
    later = Settings(_env_file=None, FOLLOW_UP_REMINDER_TIME="18:30")  # type: ignore[call-arg]
    assert later.follow_up_reminder_time == time(18, 30)
    for wrong in ("9:00", "24:00", "09:60", "09:00:00", "nine", ""):
        with pytest.raises(ValidationError, match="HH:MM"):
            Settings(_env_file=None, FOLLOW_UP_REMINDER_TIME=wrong or " ")  # type: ignore[call-arg]


async def test_who_is_due_today(rows: Rows, reminder_settings: Settings) -> None:
    advisor = await rows.advisor()
    colleague = await rows.advisor()
    # Due: planned today (a date alone is stored as its midnight), the earliest plan first.
    await rows.customer(advisor, beijing(TODAY, 14), name="王女士")
    await rows.customer(advisor, beijing(TODAY, 10), name="李先生")
    first = await rows.customer(advisor, clock.day_start(TODAY), name="赵女士")
    # A plan a former owner made comes with the customer.
    await rows.customer(advisor, beijing(TODAY, 16), by=colleague)
    # The latest follow-up decides: an earlier plan for today was replaced.
    await rows.customer(advisor, beijing(TODAY, 11), beijing(TOMORROW, 11))
    await rows.customer(advisor, beijing(TODAY, 11), None)  # called early, nothing planned
    # The latest follow-up planned today, after an older one planned for yesterday.
    await rows.customer(advisor, beijing(YESTERDAY, 9), beijing(TODAY, 17))
    # Not today.
    await rows.customer(advisor, clock.day_start(TOMORROW))
    await rows.customer(advisor, beijing(YESTERDAY, 23, 59))
    await rows.customer(advisor)  # never followed up
    # Due today, but a colleague's customer, or nobody's.
    theirs = await rows.customer(colleague, beijing(TODAY, 15), name="钱先生")
    await rows.customer(None, beijing(TODAY, 10), by=colleague)

    assert await send_follow_up_reminders(rows.database, reminder_settings, MORNING) == 2

    mine = await rows.reminder_of(advisor)
    assert (mine.status, mine.channel, mine.template_id) == (
        NotificationStatus.pending.value,
        "direct",
        REMINDER_TEMPLATE,
    )
    assert mine.payload == {
        "template": "follow_up_reminder",
        "values": {
            "title": "今日有5位客户待跟进",
            "count": 5,
            "customer_name": "赵女士",
            "date": TODAY.isoformat(),
        },
        "page": f"pages/customer/detail?id={first.id}",  # the earliest plan's customer
    }
    assert mine.fold_key == f"follow_up_reminder:{advisor.id}:{TODAY.isoformat()}"
    colleagues = await rows.reminder_of(colleague)
    assert colleagues.payload["values"]["count"] == 1
    assert colleagues.payload["values"]["customer_name"] == "钱先生"
    assert colleagues.payload["page"] == f"pages/customer/detail?id={theirs.id}"


async def test_nothing_before_the_configured_time_then_one_a_day(
    rows: Rows, reminder_settings: Settings
) -> None:
    advisor = await rows.advisor()
    await rows.customer(advisor, beijing(TODAY, 10))
    await rows.customer(advisor, beijing(TOMORROW, 10))

    assert (
        await send_follow_up_reminders(rows.database, reminder_settings, beijing(TODAY, 8, 59)) == 0
    )
    assert await rows.reminders() == []
    assert await send_follow_up_reminders(rows.database, reminder_settings, beijing(TODAY, 9)) == 1
    # Run again, pending or already sent: nothing more that day.
    assert await send_follow_up_reminders(rows.database, reminder_settings, MORNING) == 0
    async with rows.database.writer() as session:
        [row] = await session.scalars(select(Notification))
        row.status = NotificationStatus.sent.value
        await session.commit()
    assert await send_follow_up_reminders(rows.database, reminder_settings, beijing(TODAY, 20)) == 0
    assert len(await rows.reminders()) == 1

    # The next day: before its 09:00 nothing, after it the day's own reminder.
    assert (
        await send_follow_up_reminders(rows.database, reminder_settings, beijing(TOMORROW, 7)) == 0
    )
    assert (
        await send_follow_up_reminders(rows.database, reminder_settings, beijing(TOMORROW, 9, 1))
        == 1
    )
    assert [row.fold_key for row in await rows.reminders()] == [
        f"follow_up_reminder:{advisor.id}:{TODAY.isoformat()}",
        f"follow_up_reminder:{advisor.id}:{TOMORROW.isoformat()}",
    ]


async def test_the_configured_time_is_beijing_time(rows: Rows, reminder_settings: Settings) -> None:
    evening = reminder_settings.model_copy(update={"follow_up_reminder_time": time(18, 30)})
    advisor = await rows.advisor()
    await rows.customer(advisor, beijing(TODAY, 20))
    # The job's clock is UTC, as the server's: 10:29 UTC is 18:29 in Beijing.
    just_before = datetime.combine(TODAY, time(10, 29), tzinfo=UTC)
    assert await send_follow_up_reminders(rows.database, evening, just_before) == 0
    at_the_time = datetime.combine(TODAY, time(10, 30), tzinfo=UTC)
    assert await send_follow_up_reminders(rows.database, evening, at_the_time) == 1


async def test_jobs_running_at_once_remind_each_advisor_once(
    rows: Rows, reminder_settings: Settings
) -> None:
    advisors = [await rows.advisor() for _ in range(3)]
    for advisor in advisors:
        await rows.customer(advisor, beijing(TODAY, 10))
        await rows.customer(advisor, beijing(TODAY, 11))
    unbound = await rows.advisor(bound=False)
    await rows.customer(unbound, beijing(TODAY, 10))

    results = await asyncio.gather(
        *(send_follow_up_reminders(rows.database, reminder_settings, MORNING) for _ in range(4))
    )
    assert sum(results) == 4
    again = await asyncio.gather(
        *(send_follow_up_reminders(rows.database, reminder_settings, MORNING) for _ in range(2))
    )
    assert again == [0, 0]
    reminded = await rows.reminders()
    assert sorted(row.advisor_id or "" for row in reminded) == sorted(
        a.id for a in [*advisors, unbound]
    )
    assert all(row.fold_count == 1 for row in reminded)


async def test_what_cannot_be_sent_is_skipped_once_saying_why(
    rows: Rows, reminder_settings: Settings
) -> None:
    unbound = await rows.advisor(bound=False)
    spent = await rows.advisor(credits=0)
    await rows.customer(unbound, beijing(TODAY, 10))
    await rows.customer(spent, beijing(TODAY, 10))

    for _ in range(2):
        await send_follow_up_reminders(rows.database, reminder_settings, MORNING)
    assert (await rows.reminder_of(unbound)).skip_reason == NO_OPENID
    assert (await rows.reminder_of(spent)).skip_reason == NO_CREDIT
    assert {row.status for row in await rows.reminders()} == {NotificationStatus.skipped.value}


async def test_without_a_template_the_reminder_is_skipped(rows: Rows, settings: Settings) -> None:
    assert settings.wechat_template_follow_up_reminder == ""
    advisor = await rows.advisor()
    await rows.customer(advisor, beijing(TODAY, 10))
    assert await send_follow_up_reminders(rows.database, settings, MORNING) == 1
    row = await rows.reminder_of(advisor)
    assert (row.status, row.skip_reason) == (NotificationStatus.skipped.value, NO_TEMPLATE)


async def test_the_message_is_fitted_to_the_template_and_sent(
    rows: Rows,
    reminder_settings: Settings,
    sim_control: SimControl,
    wechat_http: httpx.AsyncClient,
) -> None:
    advisor = await rows.advisor(credits=1)
    assert advisor.openid
    await sim_control.register_template(REMINDER_TEMPLATE)
    await sim_control.grant(advisor.openid, REMINDER_TEMPLATE, 1)
    long_name = "欧阳" + "很长的名字" * 5  # past a thing's 20 characters
    first = await rows.customer(advisor, beijing(TODAY, 10), name=long_name)
    await rows.customer(advisor, beijing(TODAY, 11))

    await send_follow_up_reminders(rows.database, reminder_settings, MORNING)
    wechat = WeChatClient.from_settings(wechat_http, rows.database, reminder_settings)
    await DeliveryWorker(rows.database, wechat, reminder_settings).run_until_idle()

    assert (await rows.reminder_of(advisor)).status == NotificationStatus.sent.value
    [message] = await sim_control.messages(advisor.openid)
    assert message["template_id"] == REMINDER_TEMPLATE
    assert message["page"] == f"pages/customer/detail?id={first.id}"
    assert message["data"] == {
        "thing1": {"value": "今日有2位客户待跟进"},
        "thing2": {"value": long_name[:19] + "…"},
        "number3": {"value": "2"},
        "date4": {"value": TODAY.isoformat()},
    }
