"""The delivery worker: claims due notifications, delivers them outside any transaction,
and records each outcome behind a status guard (docs/architecture.md; README: Notifications).

Runs embedded in the API process (started by the app's lifespan) or as `wxcrm worker`.
Any number of workers may run: on PostgreSQL they claim with FOR UPDATE SKIP LOCKED, on
SQLite the single writer lock keeps each claim atomic. A worker that dies leaves its rows
`sending`; they go back to `pending` once its heartbeat is stale, and are sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import Database
from wxcrm.core.ids import new_id
from wxcrm.core.metrics import DELIVERIES, errcode_label
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.notifications.delivery import Delivery, Outcome, deliver
from wxcrm.notifications.models import Notification, NotificationAttempt, NotificationStatus
from wxcrm.notifications.outbox import WAKE_CHANNEL, Channel
from wxcrm.notifications.subscriptions import (
    NO_CREDIT,
    NO_OPENID,
    NO_TEMPLATE,
    give_back_credit,
    take_credits,
    zero_credits,
)
from wxcrm.notifications.templates import TemplateName, template
from wxcrm.users.models import User
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.errors import RetryPolicy

log = structlog.get_logger(__name__)

# How long finished outcomes wait to be written together: batching is what lets one
# worker record a thousand deliveries a second.
FLUSH_DELAY_S = 0.02
# While the database refuses (down, read-only, locked), a loop waits longer after each
# consecutive failure, up to this, rather than retrying and logging a traceback each turn.
FAILURE_BACKOFF_MAX_S = 30.0

N = Notification
# A delivery's outcome as the metrics name it: a `pending` row is one to be tried again.
_OUTCOME_LABELS = {
    NotificationStatus.sent: "sent",
    NotificationStatus.pending: "retry",
    NotificationStatus.failed: "failed",
    NotificationStatus.skipped: "skipped",
}
# Core tables for the batched writes: the ORM's bulk paths cost more than the sends.
_NOTIFICATIONS = cast(Table, Notification.__table__)
_ATTEMPTS = cast(Table, NotificationAttempt.__table__)


@dataclass
class _Backoff:
    """How long one loop waits after its n-th consecutive failure: doubling, capped."""

    first_s: float
    failures: int = 0

    def failed(self) -> float:
        self.failures += 1
        return min(FAILURE_BACKOFF_MAX_S, self.first_s * 2.0 ** (self.failures - 1))

    def succeeded(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class ScheduledJob:
    """Work a worker runs every `every_seconds` besides delivering (e.g. recycling customers
    to the public pool). Every worker runs it, so it must be safe to run concurrently."""

    name: str
    every_seconds: float
    run: Callable[[Database, Settings], Awaitable[object]]


class DeliveryWorker:
    def __init__(
        self,
        database: Database,
        wechat: WeChatClient,
        settings: Settings,
        *,
        worker_id: str | None = None,
        jobs: Sequence[ScheduledJob] = (),
    ) -> None:
        self.database = database
        self.wechat = wechat
        self.settings = settings
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.retry = RetryPolicy(
            attempts=settings.outbox_max_attempts,
            base_delay=settings.outbox_retry_base_seconds,
            max_delay=settings.outbox_retry_max_seconds,
        )
        self.jobs = tuple(jobs)
        self.concurrency = settings.worker_concurrency
        self._claim_batch = max(1, self.concurrency // 4)
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[tuple[Delivery, Outcome]] = []
        self._wake = asyncio.Event()  # a notification was committed (PostgreSQL NOTIFY)
        self._slot_freed = asyncio.Event()
        self._pending_flush = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self.log = log.bind(worker_id=self.id)

    # -- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then finish what is in flight and return."""
        self.log.info("worker started", concurrency=self.concurrency)
        period = self.settings.worker_heartbeat_seconds
        background = [
            asyncio.create_task(self._every(period, self.beat)),
            asyncio.create_task(self._every(period, self.recover_stalled)),
            asyncio.create_task(self._flusher()),
            *(
                asyncio.create_task(self._every(job.every_seconds, self._job(job)))
                for job in self.jobs
            ),
        ]
        try:
            async with self._listening():
                try:
                    await self.recover_stalled()
                except Exception:
                    # The database may be down at start-up: the periodic recovery tries again.
                    self.log.exception("recovering stalled rows failed")
                await self._claim_loop(stop)
            await self.drain()
        finally:
            # Not while a flush is writing: cancelled mid-write, its outcomes would be lost.
            async with self._flush_lock:
                for task in background:
                    task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._flush()
            self.log.info("worker stopped")

    def _log_failure(self, what: str, backoff: _Backoff, retry_in: float) -> None:
        # The traceback once; after it a line per retry, spaced out by the backoff.
        if backoff.failures == 1:
            self.log.exception(what, retry_in=retry_in)
        else:
            self.log.warning(what, failures=backoff.failures, retry_in=retry_in)

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        backoff = _Backoff(self.settings.worker_poll_seconds)
        try:
            while not stop.is_set():
                # Cleared before looking, so a signal that comes while we look is not lost.
                self._slot_freed.clear()
                self._wake.clear()
                free = self.concurrency - len(self._tasks)
                # Claim in batches: a claim is a write transaction, too dear for one row at
                # a time while deliveries are under way.
                if free < self._claim_batch and self._tasks:
                    await self._wait_for(self._slot_freed, stopping, None)
                    continue
                try:
                    claimed = await self.claim(free)
                    backoff.succeeded()
                except Exception:
                    retry_in = backoff.failed()
                    self._log_failure("claim failed", backoff, retry_in)
                    await self._wait_for(asyncio.Event(), stopping, retry_in)
                    continue
                for delivery in claimed:
                    task = asyncio.create_task(self._deliver(delivery))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if not claimed:
                    await self._wait_for(self._wake, stopping, self.settings.worker_poll_seconds)
        finally:
            stopping.cancel()

    @staticmethod
    async def _wait_for(
        event: asyncio.Event, stopping: asyncio.Task[Any], at_most: float | None
    ) -> None:
        """Until `event` is set or the worker is stopping, for `at_most` seconds."""
        waiter = asyncio.create_task(event.wait())
        await asyncio.wait({waiter, stopping}, timeout=at_most, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def run_until_idle(self) -> None:
        """Deliver everything due now, then return (for tests and one-off runs)."""
        while claimed := await self.claim(self.concurrency):
            await asyncio.gather(*(self._deliver(delivery) for delivery in claimed))
            await self._flush()

    async def drain(self) -> None:
        """Wait for the deliveries under way and write their outcomes."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._flush()

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            outcome = await deliver(delivery, self.wechat, self.settings, self.retry)
            DELIVERIES.labels(_OUTCOME_LABELS[outcome.status], errcode_label(outcome.errcode)).inc()
            self._outcomes.append((delivery, outcome))
            self._pending_flush.set()
        finally:
            self._slot_freed.set()

    def _job(self, job: ScheduledJob) -> Callable[[], Awaitable[object]]:
        async def run() -> object:
            return await job.run(self.database, self.settings)

        return run

    async def _every(self, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        backoff = _Backoff(seconds)
        wait = seconds
        while True:
            await asyncio.sleep(wait)
            try:
                await job()
                backoff.succeeded()
                wait = seconds
            except Exception:
                wait = max(seconds, backoff.failed())
                self._log_failure("periodic job failed", backoff, wait)

    async def _flusher(self) -> None:
        backoff = _Backoff(self.settings.worker_poll_seconds)
        while True:
            await self._pending_flush.wait()
            await asyncio.sleep(FLUSH_DELAY_S)
            self._pending_flush.clear()
            try:
                await self._flush()
                backoff.succeeded()
            except Exception:
                # The outcomes are kept: try again after a pause, not only when another
                # delivery ends (there may be none, and the sent rows would stay `sending`).
                retry_in = backoff.failed()
                self._log_failure("recording outcomes failed", backoff, retry_in)
                await asyncio.sleep(retry_in)
                self._pending_flush.set()

    @contextlib.asynccontextmanager
    async def _listening(self) -> AsyncIterator[None]:
        """On PostgreSQL, wake up as soon as a notification is committed (LISTEN/NOTIFY);
        elsewhere the claim loop's short poll is what finds new rows."""
        if self.database.is_sqlite:
            yield
            return
        async with self.database.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None

            def on_notify(*_args: object) -> None:
                self._wake.set()

            await driver.add_listener(WAKE_CHANNEL, on_notify)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(WAKE_CHANNEL, on_notify)

    # -- claiming ---------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Delivery]:
        """Take up to `limit` due rows, in one short transaction, and reserve what they need.

        Rows that cannot be sent at all (no bound openid, no template, no credit left) are
        settled here as `skipped`, with the reason, and nothing is sent for them.
        """
        now = utcnow()
        due = (
            select(N.id)
            .where(N.status == NotificationStatus.pending.value, N.scheduled_at <= now)
            .order_by(N.scheduled_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.database.writer() as session:
            rows = (
                await session.execute(
                    update(N)
                    .where(N.id.in_(due.scalar_subquery()))
                    .values(
                        status=NotificationStatus.sending.value,
                        locked_by=self.id,
                        heartbeat_at=now,
                        attempts=N.attempts + 1,
                        updated_at=now,
                    )
                    .returning(
                        N.id, N.event, N.channel, N.advisor_id, N.template_id, N.payload, N.attempts
                    )
                    .execution_options(synchronize_session=False)
                )
            ).all()
            if not rows:
                await session.commit()
                return []
            deliveries = [Delivery(*row) for row in rows]
            ready, skipped = await self._prepare(session, deliveries)
            await self._settle_skipped(session, skipped, now)
            await session.commit()
        for delivery in ready:
            self.log.info(
                "notification claimed", notification_id=delivery.id, attempt=delivery.attempts
            )
        for delivery, reason in skipped:
            DELIVERIES.labels("skipped", errcode_label(None)).inc()
            self.log.info("notification skipped", notification_id=delivery.id, reason=reason)
        return ready

    async def _prepare(
        self, session: AsyncSession, deliveries: list[Delivery]
    ) -> tuple[list[Delivery], list[tuple[Delivery, str]]]:
        ready: list[Delivery] = []
        skipped: list[tuple[Delivery, str]] = []
        direct = [d for d in deliveries if d.channel == Channel.direct.value]
        ready.extend(d for d in deliveries if d.channel != Channel.direct.value)
        advisor_ids = {d.advisor_id for d in direct if d.advisor_id}
        openids: dict[str, str | None] = {}
        if advisor_ids:
            result = await session.execute(
                select(User.id, User.openid).where(User.id.in_(advisor_ids))
            )
            openids = {str(user_id): openid for user_id, openid in result.all()}

        needs_credit: dict[tuple[str, str], list[Delivery]] = {}
        for delivery in direct:
            delivery.openid = openids.get(delivery.advisor_id or "")
            spec = template(self.settings, TemplateName(delivery.payload["template"]))
            delivery.template_id = delivery.template_id or spec.template_id
            if not delivery.openid:
                skipped.append((delivery, NO_OPENID))
            elif not delivery.template_id:
                skipped.append((delivery, NO_TEMPLATE))
            elif delivery.template_id in self.settings.wechat_long_term_templates:
                ready.append(delivery)
            else:
                key = (delivery.advisor_id or "", delivery.template_id)
                needs_credit.setdefault(key, []).append(delivery)

        for (advisor_id, template_id), waiting in needs_credit.items():
            granted = await take_credits(session, advisor_id, template_id, len(waiting))
            for delivery in waiting[:granted]:
                delivery.credit_reserved = True
                ready.append(delivery)
            skipped.extend((delivery, NO_CREDIT) for delivery in waiting[granted:])
        # Recorded on the rows so that whoever recovers them knows what to give back.
        reserved: dict[str, list[str]] = {}
        for delivery in ready:
            if delivery.credit_reserved and delivery.template_id:
                reserved.setdefault(delivery.template_id, []).append(delivery.id)
        for template_id, row_ids in reserved.items():
            await session.execute(
                update(N)
                .where(N.id.in_(row_ids))
                .values(credit_reserved=True, template_id=template_id)
                .execution_options(synchronize_session=False)
            )
        return ready, skipped

    async def _settle_skipped(
        self, session: AsyncSession, skipped: list[tuple[Delivery, str]], now: datetime
    ) -> None:
        for delivery, reason in skipped:
            await session.execute(
                update(N)
                .where(N.id == delivery.id)
                .values(
                    status=NotificationStatus.skipped.value,
                    skip_reason=reason,
                    locked_by=None,
                    heartbeat_at=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        if skipped:
            await session.execute(
                insert(_ATTEMPTS),
                [
                    _attempt_row(delivery, Outcome.skip(reason), self.id, now, now)
                    for delivery, reason in skipped
                ],
            )

    # -- recording outcomes -------------------------------------------------------------------

    async def _flush(self) -> None:
        async with self._flush_lock:
            outcomes, self._outcomes = self._outcomes, []
            if not outcomes:
                return
            try:
                await self._write_outcomes(outcomes)
            except BaseException:
                self._outcomes[:0] = outcomes  # kept for the next flush
                raise

    async def _write_outcomes(self, outcomes: list[tuple[Delivery, Outcome]]) -> None:
        now = utcnow()
        sent = [(d, o) for d, o in outcomes if o.status is NotificationStatus.sent]
        others = [(d, o) for d, o in outcomes if o.status is not NotificationStatus.sent]
        async with self.database.writer() as session:
            if sent:
                # Many successes in one statement; the guard leaves alone any row this
                # worker no longer holds (its heartbeat went stale and another took it).
                await session.execute(
                    update(_NOTIFICATIONS)
                    .where(
                        _NOTIFICATIONS.c.id == bindparam("row_id"),
                        _NOTIFICATIONS.c.status == NotificationStatus.sending.value,
                        _NOTIFICATIONS.c.locked_by == self.id,
                    )
                    .values(
                        status=NotificationStatus.sent.value,
                        msgid=bindparam("msgid"),
                        sent_at=now,
                        updated_at=now,
                        locked_by=None,
                        heartbeat_at=None,
                        credit_reserved=False,
                        last_errcode=None,
                        last_errmsg=None,
                    ),
                    [{"row_id": d.id, "msgid": o.msgid} for d, o in sent],
                )
            for delivery, outcome in others:
                await self._record_failure(session, delivery, outcome, now)
            await session.execute(
                insert(_ATTEMPTS),
                [_attempt_row(d, o, self.id, o.started_at, now) for d, o in outcomes],
            )
            await session.commit()
        for delivery, outcome in sent:
            self.log.info(
                "notification sent",
                notification_id=delivery.id,
                attempt=delivery.attempts,
                msgid=outcome.msgid,
            )

    async def _record_failure(
        self, session: AsyncSession, delivery: Delivery, outcome: Outcome, now: datetime
    ) -> None:
        values: dict[str, Any] = {
            "status": outcome.status.value,
            "last_errcode": outcome.errcode,
            "last_errmsg": outcome.errmsg,
            "updated_at": now,
            "locked_by": None,
            "heartbeat_at": None,
            "credit_reserved": False,
        }
        if outcome.retry_at is not None:
            values["scheduled_at"] = outcome.retry_at
        result = await session.execute(
            update(N)
            .where(
                N.id == delivery.id,
                N.status == NotificationStatus.sending.value,
                N.locked_by == self.id,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return  # no longer ours: whoever holds it now settles the credit
        # A row without an advisor or a template has no subscription to settle.
        if delivery.advisor_id and delivery.template_id:
            if outcome.zero_credits:
                await zero_credits(session, delivery.advisor_id, delivery.template_id)
            elif delivery.credit_reserved:
                # WeChat did not deliver, so the user's grant was not spent: give it back.
                await give_back_credit(session, delivery.advisor_id, delivery.template_id)
        log_level = "info" if outcome.status is NotificationStatus.pending else "warning"
        getattr(self.log, log_level)(
            "notification not delivered",
            notification_id=delivery.id,
            status=outcome.status.value,
            errcode=outcome.errcode,
            errmsg=outcome.errmsg,
            attempt=delivery.attempts,
        )

    # -- liveness -----------------------------------------------------------------------------

    async def beat(self) -> None:
        """Tell other workers that the rows this one holds are still being worked on."""
        async with self.database.writer() as session:
            await session.execute(
                update(N)
                .where(N.locked_by == self.id, N.status == NotificationStatus.sending.value)
                .values(heartbeat_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            await session.commit()

    async def recover_stalled(self) -> int:
        """Put back to `pending` the rows of workers whose heartbeat went stale, returning
        the credits they had reserved. Returns how many rows were recovered."""
        stale_before = utcnow() - timedelta(seconds=self.settings.worker_stale_seconds)
        async with self.database.writer() as session:
            stalled = (
                await session.execute(
                    select(N.id, N.advisor_id, N.template_id, N.credit_reserved)
                    .where(
                        N.status == NotificationStatus.sending.value,
                        or_(N.heartbeat_at.is_(None), N.heartbeat_at < stale_before),
                    )
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row_id, advisor_id, template_id, reserved in stalled:
                await session.execute(
                    update(N)
                    .where(N.id == row_id)
                    .values(
                        status=NotificationStatus.pending.value,
                        locked_by=None,
                        heartbeat_at=None,
                        credit_reserved=False,
                        scheduled_at=utcnow(),
                    )
                    .execution_options(synchronize_session=False)
                )
                if reserved and advisor_id and template_id:
                    await give_back_credit(session, advisor_id, template_id)
            await session.commit()
        if stalled:
            self.log.warning("recovered stalled notifications", count=len(stalled))
        return len(stalled)


def _attempt_row(
    delivery: Delivery, outcome: Outcome, worker_id: str, started: datetime, finished: datetime
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "notification_id": delivery.id,
        "number": delivery.attempts,
        "worker_id": worker_id,
        "outcome": outcome.status.value,
        "errcode": outcome.errcode,
        "errmsg": outcome.errmsg,
        "http_status": outcome.http_status,
        "started_at": started,
        "finished_at": finished,
    }
