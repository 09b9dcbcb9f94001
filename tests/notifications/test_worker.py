"""The delivery worker against the simulator over real HTTP: never lost, never twice when
nothing failed, errors handled as wechat/errors.py's table says."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from subprocess import PIPE
from typing import Any

import pytest
from sqlalchemy import func, select, update

from tests.conftest import ACTION_TEMPLATE, SIM_SECRET, TEST_SECRET_KEY
from tests.factories import committed_advisor
from tests.notifications.conftest import (
    LONG_TERM_TEMPLATE,
    action_payload,
    grant_at_wechat,
    queue_action,
    queue_committed,
)
from wxcrm.core.db import Database
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.notifications.models import (
    AdvisorSubscription,
    Notification,
    NotificationAttempt,
    NotificationStatus,
)
from wxcrm.notifications.outbox import Channel, queue_notification
from wxcrm.notifications.subscriptions import NO_CREDIT as SKIP_NO_CREDIT
from wxcrm.notifications.subscriptions import NO_OPENID as SKIP_NO_OPENID
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.users.models import User
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.sim import SimControl, SimServer


async def rows(database: Database) -> list[Notification]:
    async with database.reader() as session:
        result = await session.execute(select(Notification).order_by(Notification.created_at))
        return list(result.scalars())


async def credits(database: Database, advisor: User, template_id: str = ACTION_TEMPLATE) -> int:
    async with database.reader() as session:
        value = await session.scalar(
            select(AdvisorSubscription.credits).where(
                AdvisorSubscription.advisor_id == advisor.id,
                AdvisorSubscription.template_id == template_id,
            )
        )
        return int(value or 0)


async def attempts_of(database: Database, notification_id: str) -> list[NotificationAttempt]:
    async with database.reader() as session:
        result = await session.execute(
            select(NotificationAttempt)
            .where(NotificationAttempt.notification_id == notification_id)
            .order_by(NotificationAttempt.number)
        )
        return list(result.scalars())


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    """Wait for `check` to hold; the bound only stops a broken test from hanging."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def settled(database: Database) -> bool:
    async with database.reader() as session:
        open_rows = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.status.in_(
                    [NotificationStatus.pending.value, NotificationStatus.sending.value]
                )
            )
        )
    return open_rows == 0


async def run_worker_until_settled(worker: DeliveryWorker, database: Database) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await until(lambda: settled(database))
    finally:
        stop.set()
        await task


# -- transactional --------------------------------------------------------------------------


async def test_a_notification_queued_in_a_rolled_back_transaction_is_never_sent(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=1)
    await grant_at_wechat(sim_control, advisor, 1)
    async with committed.writer() as session:
        await queue_action(session, advisor)
        await session.rollback()
    await worker.run_until_idle()
    assert await rows(committed) == []
    assert await sim_control.messages() == []


async def test_a_committed_notification_is_sent_once_spending_one_credit(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=3)
    await grant_at_wechat(sim_control, advisor, 3)
    await queue_committed(committed, advisor, 1)
    await worker.run_until_idle()
    [row] = await rows(committed)
    assert row.status == NotificationStatus.sent and row.msgid and row.attempts == 1
    [message] = await sim_control.messages()
    assert message["touser"] == advisor.openid
    assert message["template_id"] == ACTION_TEMPLATE
    assert message["page"] == "pages/customer/detail?id=0"
    assert message["miniprogram_state"] == "formal" and message["lang"] == "zh_CN"
    assert message["data"]["thing1"]["value"] == "新客户查看了您的简历"
    assert message["data"]["time2"]["value"] == "2024-01-01 12:00"
    assert await credits(committed, advisor) == 2
    [attempt] = await attempts_of(committed, row.id)
    assert attempt.outcome == "sent"
    await worker.run_until_idle()
    assert len(await sim_control.messages()) == 1


# -- nothing to send with ---------------------------------------------------------------------


async def test_without_a_credit_the_row_is_skipped_with_the_reason(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=1)
    await grant_at_wechat(sim_control, advisor, 5)
    await queue_committed(committed, advisor, 2)
    await worker.run_until_idle()
    statuses = sorted(row.status for row in await rows(committed))
    assert statuses == ["sent", "skipped"]
    skipped = next(row for row in await rows(committed) if row.status == "skipped")
    assert skipped.skip_reason == SKIP_NO_CREDIT
    assert len(await sim_control.messages()) == 1
    assert await credits(committed, advisor) == 0


async def test_an_advisor_without_a_bound_openid_is_skipped(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=1, bound=False)
    await queue_committed(committed, advisor, 1)
    await worker.run_until_idle()
    [row] = await rows(committed)
    assert row.status == "skipped" and row.skip_reason == SKIP_NO_OPENID
    assert await sim_control.messages() == []
    assert await credits(committed, advisor) == 1


async def test_a_long_term_template_spends_no_credit(
    committed: Database,
    wechat: WeChatClient,
    outbox_settings: Settings,
    sim_control: SimControl,
) -> None:
    settings = outbox_settings.model_copy(
        update={
            "wechat_template_customer_action": LONG_TERM_TEMPLATE,
            "wechat_long_term_templates": [LONG_TERM_TEMPLATE],
        }
    )
    advisor = await committed_advisor(committed)  # no credit in our ledger
    assert advisor.openid
    await sim_control.register_template(LONG_TERM_TEMPLATE, long_term=True)
    await sim_control.grant(advisor.openid, LONG_TERM_TEMPLATE, 1)
    await queue_committed(committed, advisor, 3)
    await DeliveryWorker(committed, wechat, settings).run_until_idle()
    assert [row.status for row in await rows(committed)] == ["sent"] * 3
    assert len(await sim_control.messages()) == 3


# -- WeChat's errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [{"errcode": -1}, {"http_status": 503}], ids=["-1", "503"])
async def test_three_transient_failures_then_delivered_exactly_once(
    committed: Database,
    worker: DeliveryWorker,
    sim_control: SimControl,
    fault: dict[str, int],
) -> None:
    advisor = await committed_advisor(committed, credits=1)
    await grant_at_wechat(sim_control, advisor, 1)
    await worker.wechat.tokens.get()
    await sim_control.fault("subscribe_send", count=3, **fault)
    await queue_committed(committed, advisor, 1)
    await run_worker_until_settled(worker, committed)
    [row] = await rows(committed)
    assert row.status == "sent" and row.attempts == 4
    assert len(await sim_control.messages()) == 1
    outcomes = [a.outcome for a in await attempts_of(committed, row.id)]
    assert outcomes == ["pending", "pending", "pending", "sent"]
    assert await credits(committed, advisor) == 0


async def test_transient_failures_end_in_failed_after_the_last_attempt(
    committed: Database,
    wechat: WeChatClient,
    outbox_settings: Settings,
    sim_control: SimControl,
) -> None:
    worker = DeliveryWorker(
        committed, wechat, outbox_settings.model_copy(update={"outbox_max_attempts": 2})
    )
    advisor = await committed_advisor(committed, credits=1)
    await grant_at_wechat(sim_control, advisor, 1)
    await worker.wechat.tokens.get()
    await sim_control.fault("subscribe_send", count=10, errcode=-1)
    await queue_committed(committed, advisor, 1)
    await run_worker_until_settled(worker, committed)
    [row] = await rows(committed)
    assert row.status == "failed" and row.attempts == 2 and row.last_errcode == -1
    assert await credits(committed, advisor) == 1  # not delivered: the credit is back


async def test_47003_fails_at_once_keeping_the_errcode(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=2)
    await grant_at_wechat(sim_control, advisor, 2)
    await worker.wechat.tokens.get()
    await sim_control.fault("subscribe_send", count=1, errcode=47003)
    await queue_committed(committed, advisor, 1)
    await run_worker_until_settled(worker, committed)
    [row] = await rows(committed)
    assert row.status == "failed" and row.last_errcode == 47003 and row.attempts == 1
    assert (await sim_control.stats())["calls"]["subscribe_send"] == 1
    assert await credits(committed, advisor) == 2  # WeChat refused it: nothing was spent


async def test_43101_fails_at_once_and_zeroes_the_advisors_credits(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=5)  # our ledger thinks 5; WeChat has none
    await queue_committed(committed, advisor, 1)
    await run_worker_until_settled(worker, committed)
    [row] = await rows(committed)
    assert row.status == "failed" and row.last_errcode == 43101 and row.attempts == 1
    assert (await sim_control.stats())["calls"]["subscribe_send"] == 1
    assert await credits(committed, advisor) == 0


async def test_a_value_that_cannot_be_fitted_fails_without_sending(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=1)
    await grant_at_wechat(sim_control, advisor, 1)
    payload = action_payload(1)
    payload["values"]["time"] = "明天"  # no time at all: nothing true can stand in for it
    async with committed.writer() as session:
        await queue_notification(
            session,
            event="customer_action",
            channel=Channel.direct,
            advisor_id=advisor.id,
            payload=payload,
        )
        await session.commit()
    await worker.run_until_idle()
    [row] = await rows(committed)
    assert row.status == "failed" and "time2" in (row.last_errmsg or "")
    assert await sim_control.messages() == []
    assert await credits(committed, advisor) == 1


# -- the cloud channel --------------------------------------------------------------------------


async def test_the_cloud_channel_invokes_the_function_with_the_event(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    event = {
        "type": "sendCustomerAssignNotify",
        "notificationData": {"assignedToId": "a" * 24, "customerName": "张三"},
    }
    async with committed.writer() as session:
        await queue_notification(
            session, event="customer_assigned", channel=Channel.cloud, payload={"event": event}
        )
        await session.commit()
    await worker.run_until_idle()
    [row] = await rows(committed)
    assert row.status == "sent"
    [invocation] = await sim_control.invocations()
    assert invocation["env"] == "cloud1-test" and invocation["name"] == "quickstartFunctions"
    assert invocation["event"] == event


async def test_a_cloud_function_reporting_43101_fails_the_row_and_zeroes_credits(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl, sim: SimServer
) -> None:
    advisor = await committed_advisor(committed, credits=2, template_id="tmpl-customer-assigned")

    def refusing(event: dict[str, Any]) -> dict[str, Any]:
        return {"success": False, "error": "订阅消息发送失败", "errCode": 43101}

    sim.state.register_function("quickstartFunctions", refusing)
    async with committed.writer() as session:
        await queue_notification(
            session,
            event="customer_assigned",
            channel=Channel.cloud,
            advisor_id=advisor.id,
            template_id="tmpl-customer-assigned",
            payload={"event": {"type": "sendCustomerAssignNotify", "notificationData": {}}},
        )
        await session.commit()
    await worker.run_until_idle()
    [row] = await rows(committed)
    assert row.status == "failed" and row.last_errcode == 43101
    assert await credits(committed, advisor, "tmpl-customer-assigned") == 0


# -- workers that die, stop, or run side by side ------------------------------------------------


async def test_rows_of_a_worker_whose_heartbeat_stopped_are_recovered_and_sent(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=1)
    await grant_at_wechat(sim_control, advisor, 1)
    await queue_committed(committed, advisor, 1)
    # A worker claimed it (and its credit), then died.
    async with committed.writer() as session:
        await session.execute(
            update(Notification).values(
                status="sending",
                locked_by="dead-worker",
                heartbeat_at=utcnow() - timedelta(minutes=5),
                credit_reserved=True,
                template_id=ACTION_TEMPLATE,
                attempts=1,
            )
        )
        await session.execute(update(AdvisorSubscription).values(credits=0))
        await session.commit()
    assert await worker.recover_stalled() == 1
    assert await credits(committed, advisor) == 1
    await worker.run_until_idle()
    [row] = await rows(committed)
    assert row.status == "sent" and row.attempts == 2
    assert len(await sim_control.messages()) == 1


async def test_a_live_workers_rows_are_not_taken_from_it(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=1)
    await queue_committed(committed, advisor, 1)
    async with committed.writer() as session:
        await session.execute(
            update(Notification).values(status="sending", locked_by="busy", heartbeat_at=utcnow())
        )
        await session.commit()
    assert await worker.recover_stalled() == 0


def worker_env(database_url: str, sim_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "WECHAT_API_BASE": sim_url,
        "WECHAT_APP_ID": "wx0000000000000000",
        "WECHAT_APP_SECRET": SIM_SECRET,
        "WECHAT_TEMPLATE_CUSTOMER_ACTION": ACTION_TEMPLATE,
        "WORKER_POLL_SECONDS": "0.05",
        "WORKER_HEARTBEAT_SECONDS": "0.3",
        "WORKER_STALE_SECONDS": "1.5",
        "OUTBOX_RETRY_BASE_SECONDS": "0.05",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


async def start_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wxcrm", "worker", env=env, stdout=PIPE, stderr=PIPE
    )


async def test_sigterm_finishes_the_deliveries_in_flight(
    committed: Database, database_url: str, sim_url: str, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=5)
    await grant_at_wechat(sim_control, advisor, 5)
    await sim_control.fault("subscribe_send", count=5, delay_ms=1500)
    process = await start_worker(worker_env(database_url, sim_url))
    try:
        await queue_committed(committed, advisor, 5)

        async def all_claimed() -> bool:
            return all(row.status == "sending" for row in await rows(committed))

        await until(all_claimed)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert [row.status for row in await rows(committed)] == ["sent"] * 5
    assert len(await sim_control.messages()) == 5


async def test_a_worker_killed_mid_run_leaves_nothing_unsent(
    committed: Database, database_url: str, sim_url: str, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=1000)
    await grant_at_wechat(sim_control, advisor, 1300)  # room for the few sent twice
    await queue_committed(committed, advisor, 1000)
    env = worker_env(database_url, sim_url)
    first = await start_worker(env)

    async def some_sent() -> bool:
        return len(await sim_control.messages()) >= 150

    await until(some_sent)
    first.kill()  # SIGKILL: no chance to finish or to give anything back
    await first.wait()
    sent_before = len(await sim_control.messages())
    assert sent_before < 1000, "the worker finished before it could be killed"

    second = await start_worker(env)
    try:
        await until(lambda: settled(committed), seconds=90)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), timeout=30)
    statuses = {row.status for row in await rows(committed)}
    assert statuses == {"sent"}
    pages = {message["page"] for message in await sim_control.messages()}
    assert pages == {f"pages/customer/detail?id={n}" for n in range(1000)}


async def test_two_workers_send_each_of_1000_messages_exactly_once(
    committed: Database, database_url: str, sim_url: str, sim_control: SimControl
) -> None:
    advisor = await committed_advisor(committed, credits=1000)
    await grant_at_wechat(sim_control, advisor, 1000)
    # Both workers live throughout: a stale window of 1.5 s could call one of them dead
    # while a loaded machine (the whole suite, two writers on one SQLite file) held up
    # its heartbeat, and the other would then rightly send its rows again.
    env = worker_env(database_url, sim_url, WORKER_STALE_SECONDS="10")
    workers = [await start_worker(env), await start_worker(env)]
    try:
        await queue_committed(committed, advisor, 1000)
        await until(lambda: settled(committed), seconds=90)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            await asyncio.wait_for(process.wait(), timeout=30)
    pages = [message["page"] for message in await sim_control.messages()]
    assert len(pages) == 1000
    assert set(pages) == {f"pages/customer/detail?id={n}" for n in range(1000)}
    async with committed.reader() as session:
        claimed_by = await session.execute(
            select(NotificationAttempt.worker_id, func.count()).group_by(
                NotificationAttempt.worker_id
            )
        )
        per_worker = dict(claimed_by.all())
    assert len(per_worker) == 2, per_worker  # both took part
    assert await credits(committed, advisor) == 0


async def test_a_committed_row_wakes_an_idle_worker_without_polling(
    committed: Database,
    wechat: WeChatClient,
    outbox_settings: Settings,
    sim_control: SimControl,
) -> None:
    if committed.is_sqlite:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")
    # Polling every 60 s: only the NOTIFY sent at commit can wake the worker in time.
    settings = outbox_settings.model_copy(update={"worker_poll_seconds": 60.0})
    worker = DeliveryWorker(committed, wechat, settings)
    advisor = await committed_advisor(committed, credits=1)
    await grant_at_wechat(sim_control, advisor, 1)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.sleep(0.5)  # the worker is idle, waiting
        await queue_committed(committed, advisor, 1)

        async def delivered() -> bool:
            return len(await sim_control.messages()) == 1

        await until(delivered, seconds=10)
    finally:
        stop.set()
        await task


async def test_the_api_process_runs_an_embedded_worker_for_its_lifetime(
    committed: Database, outbox_settings: Settings, sim_control: SimControl
) -> None:
    from wxcrm.app import create_app

    app = create_app(outbox_settings, database=committed, run_migrations=False)
    advisor = await committed_advisor(committed, credits=1)
    await grant_at_wechat(sim_control, advisor, 1)
    async with app.router.lifespan_context(app):
        await queue_committed(committed, advisor, 1)

        async def delivered() -> bool:
            return len(await sim_control.messages()) == 1

        await until(delivered)
    [row] = await rows(committed)
    assert row.status == "sent"
