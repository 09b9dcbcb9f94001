"""Telling an advisor something (`tell_advisor`), what was already told, and the ledger
functions the worker settles credits with."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE, ASSIGN_TEMPLATE
from tests.factories import make_user, new_openid
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.notifications.models import NotificationStatus
from wxcrm.notifications.notify import Recipient, tell_advisor
from wxcrm.notifications.outbox import Queued
from wxcrm.notifications.repository import NotificationRepository
from wxcrm.notifications.subscriptions import (
    NO_CREDIT,
    NO_OPENID,
    NO_TEMPLATE,
    available_credits,
    give_back_credit,
    take_credits,
    zero_credits,
)
from wxcrm.notifications.templates import TemplateName
from wxcrm.users.models import User

VALUES = {"title": "客户想要联系您", "time": "2024-01-01T12:00:00+08:00", "phone": "13800138000"}


async def tell(
    session: AsyncSession, settings: Settings, advisor: User, **kwargs: object
) -> Queued:
    arguments: dict[str, object] = {
        "event": "customer_action",
        "template": TemplateName.customer_action,
        "values": VALUES,
        "page": "pages/customer/detail?id=c1",
        **kwargs,
    }
    return await tell_advisor(
        session,
        settings,
        Recipient(advisor.id, advisor.openid),
        **arguments,  # type: ignore[arg-type]
    )


async def test_a_bound_advisor_with_a_send_left_gets_a_pending_direct_message(
    session: AsyncSession, settings: Settings
) -> None:
    advisor = await make_user(session, openid=new_openid(), credits=1)
    queued = await tell(session, settings, advisor, details={"actionType": "contact_advisor"})
    row = queued.notification
    assert not queued.skipped and not queued.folded
    assert (row.status, row.channel, row.template_id) == ("pending", "direct", ACTION_TEMPLATE)
    assert row.advisor_id == advisor.id
    assert row.payload == {
        "template": "customer_action",
        "values": VALUES,
        "page": "pages/customer/detail?id=c1",
        "actionType": "contact_advisor",
    }


async def test_what_cannot_be_sent_is_written_skipped_saying_why(
    session: AsyncSession, settings: Settings
) -> None:
    unbound = await make_user(session, credits=1)
    no_credit = await make_user(session, openid=new_openid())
    bound = await make_user(session, openid=new_openid(), credits=1)
    no_template = settings.model_copy(update={"wechat_template_customer_action": ""})

    for queued, reason in [
        (await tell(session, settings, unbound), NO_OPENID),
        (await tell(session, settings, no_credit), NO_CREDIT),
        (await tell(session, no_template, bound), NO_TEMPLATE),
    ]:
        assert queued.skipped
        assert queued.notification.status == NotificationStatus.skipped
        assert queued.notification.skip_reason == reason
    assert queued.notification.template_id is None


async def test_a_long_term_template_needs_no_send_left(
    session: AsyncSession, settings: Settings
) -> None:
    advisor = await make_user(session, openid=new_openid())
    long_term = settings.model_copy(update={"wechat_long_term_templates": [ACTION_TEMPLATE]})
    assert not (await tell(session, long_term, advisor)).skipped


async def test_the_cloud_function_gets_only_the_events_it_knows(
    session: AsyncSession, settings: Settings
) -> None:
    # Unbound and without credits: whether it can be sent is the function's to say.
    advisor = await make_user(session)
    cloud = settings.model_copy(update={"notify_channel": "cloud"})
    event = {"type": "sendCustomerAssignNotify", "notificationData": {"customerName": "张三"}}

    assigned = await tell(
        session,
        cloud,
        advisor,
        event="customer_assigned",
        template=TemplateName.customer_assigned,
        cloud_event=event,
    )
    assert (assigned.notification.channel, assigned.notification.status) == ("cloud", "pending")
    assert assigned.notification.template_id == ASSIGN_TEMPLATE
    assert assigned.notification.payload == {"event": event}

    # An event the function does not know is sent directly; direct settings ignore the event.
    assert (await tell(session, cloud, advisor)).notification.channel == "direct"
    direct = await tell(
        session,
        settings,
        advisor,
        template=TemplateName.customer_assigned,
        cloud_event=event,
    )
    assert direct.notification.channel == "direct"
    assert direct.notification.skip_reason == NO_OPENID


async def test_repeats_inside_the_window_fold_into_one_message(
    session: AsyncSession, settings: Settings
) -> None:
    advisor = await make_user(session, openid=new_openid(), credits=2)
    fold = {"fold_key": f"customer_action:{advisor.id}:o1", "fold_window": timedelta(minutes=10)}
    first = await tell(session, settings, advisor, **fold)
    second = await tell(session, settings, advisor, page="pages/customer/detail?id=c2", **fold)
    assert second.folded and second.notification.id == first.notification.id
    assert second.notification.fold_count == 2
    assert second.notification.payload["page"].endswith("id=c2")


async def test_already_told_names_the_keys_of_that_event_and_those_advisors(
    session: AsyncSession, settings: Settings
) -> None:
    advisor = await make_user(session, openid=new_openid())
    other = await make_user(session, openid=new_openid())
    since = utcnow() - timedelta(minutes=1)
    await tell(session, settings, advisor, event="pool_recycle_warning", fold_key="k1")
    await tell(session, settings, advisor, event="customer_action", fold_key="k2")
    await tell(session, settings, other, event="pool_recycle_warning", fold_key="k3")

    told = await NotificationRepository(session).already_told(
        event="pool_recycle_warning",
        advisor_ids={advisor.id},
        fold_keys=["k1", "k2", "k3", "k4"],
        since=since,
    )
    assert told == {"k1"}  # a skipped warning counts: it was decided, and said why
    later = await NotificationRepository(session).already_told(
        event="pool_recycle_warning",
        advisor_ids={advisor.id},
        fold_keys=["k1"],
        since=utcnow() + timedelta(minutes=1),
    )
    assert later == set()


async def test_the_ledger_takes_gives_back_and_zeroes(session: AsyncSession) -> None:
    advisor = await make_user(session, openid=new_openid(), credits=3)

    assert await take_credits(session, advisor.id, ACTION_TEMPLATE, 2) == 2
    assert await take_credits(session, advisor.id, ACTION_TEMPLATE, 5) == 1  # what is left
    assert await take_credits(session, advisor.id, ACTION_TEMPLATE, 1) == 0
    assert await take_credits(session, advisor.id, "tmpl-never-subscribed", 1) == 0
    assert await available_credits(session, advisor.id, ACTION_TEMPLATE) == 0

    await give_back_credit(session, advisor.id, ACTION_TEMPLATE)
    await give_back_credit(session, advisor.id, ACTION_TEMPLATE)
    assert await available_credits(session, advisor.id, ACTION_TEMPLATE) == 2

    await zero_credits(session, advisor.id, ACTION_TEMPLATE)
    assert await available_credits(session, advisor.id, ACTION_TEMPLATE) == 0
