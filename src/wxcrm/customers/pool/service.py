"""The public pool (公海): what is in it, claiming from it, releasing to it, and the job that
sends neglected customers back with a warning to their owner first.

Every limit and period is a setting. Each change of owner is a guarded UPDATE (`WHERE
owner_id IS NULL` to claim, `WHERE owner_id IS NOT NULL …` to release or recycle) whose
RETURNING says which rows it really moved: two advisors claiming one customer, or two
workers recycling at once, move each customer once and write one history row for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Select, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core import clock
from wxcrm.core.db import Database
from wxcrm.core.errors import NotFound
from wxcrm.core.ids import new_id
from wxcrm.core.metrics import POOL_CLAIMS, POOL_RECYCLES, count_on_commit
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.batch import BatchResult, Refusal
from wxcrm.customers.models import AssignmentHistory, Customer
from wxcrm.customers.records.filters import search_clause
from wxcrm.notifications.notify import Recipient, tell_advisor
from wxcrm.notifications.repository import NotificationRepository
from wxcrm.notifications.templates import TemplateName
from wxcrm.users.models import User

log = structlog.get_logger(__name__)

NOT_FOUND = "客户不存在"
NOT_IN_POOL = "客户不在公海中"
ALREADY_IN_POOL = "客户已在公海中"
FROZEN = "客户已冻结"
COOLING = "冷却期内不能领取"
DAILY_LIMIT = "超过每日领取上限"
HOLDING_CAP = "超过持有客户上限"
SIGNED = "已签约客户不能释放到公海"
CHANGED = "客户状态已变化，请刷新后重试"

WARNING_EVENT = "pool_recycle_warning"
WARNING_TITLE = "客户即将回收到公海"

# SQLite allows a limited number of bound parameters per statement.
_CHUNK = 1_000
# Customers recycled or warned per transaction: SQLite's one writer is held this long only.
_JOB_BATCH = 500


class PoolChannel(StrEnum):
    """`assignment_history.channel` of the pool's own moves."""

    claim = "claim"
    release = "release"
    auto_recycle = "auto_recycle"


# -- the list -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolFilters:
    search: str | None = None
    lead_source: str | None = None
    service_category: str | None = None
    lead_level: str | None = None


def _in_pool(query: Select[Any], user: User, filters: PoolFilters) -> Select[Any]:
    query = query.where(Customer.owner_id.is_(None))
    if not user.is_staff_manager:
        query = query.where(Customer.is_frozen.is_(False))  # nothing an advisor could claim
    if filters.search:
        query = query.where(search_clause(filters.search))  # the customers list's search
    for column, value in (
        (Customer.lead_source, filters.lead_source),
        (Customer.service_category, filters.service_category),
        (Customer.lead_level, filters.lead_level),
    ):
        if value is not None:
            query = query.where(column == value)
    return query


async def list_pool(
    session: AsyncSession, user: User, filters: PoolFilters, *, offset: int, limit: int
) -> tuple[Sequence[Customer], int]:
    """The pool, newest arrivals first."""
    total = await session.scalar(
        _in_pool(select(func.count()).select_from(Customer), user, filters)
    )
    rows = await session.scalars(
        _in_pool(select(Customer), user, filters)
        .order_by(
            Customer.pool_entered_at.desc().nulls_last(),
            Customer.created_at.desc(),
            Customer.id.desc(),
        )
        .offset(offset)
        .limit(limit)
    )
    return rows.all(), int(total or 0)


# -- claiming and releasing -----------------------------------------------------------------


async def _load(session: AsyncSession, ids: Sequence[str]) -> dict[str, Customer]:
    found: dict[str, Customer] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = await session.scalars(
            select(Customer)
            .where(Customer.id.in_(ids[start : start + _CHUNK]))
            .execution_options(populate_existing=True)
        )
        found.update({customer.id: customer for customer in rows})
    return found


async def get_customer(session: AsyncSession, customer_id: str) -> Customer:
    """The customer as the database now holds it (after the UPDATEs above)."""
    customer = await session.get(Customer, customer_id, populate_existing=True)
    if customer is None:
        raise NotFound(NOT_FOUND)
    return customer


def day_start(moment: datetime) -> datetime:
    """Midnight, in China where the company works, of the day `moment` falls on."""
    return clock.day_start(clock.business_day(moment))


async def claims_today(session: AsyncSession, user_id: str, now: datetime) -> int:
    # A claim's history row goes to its claimer too: to_user_id is the indexed column.
    count = await session.scalar(
        select(func.count())
        .select_from(AssignmentHistory)
        .where(
            AssignmentHistory.to_user_id == user_id,
            AssignmentHistory.by_user_id == user_id,
            AssignmentHistory.channel == PoolChannel.claim.value,
            AssignmentHistory.created_at >= day_start(now),
        )
    )
    return int(count or 0)


async def holding(session: AsyncSession, user_id: str) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Customer).where(Customer.owner_id == user_id)
    )
    return int(count or 0)


async def claim(
    session: AsyncSession,
    settings: Settings,
    user: User,
    customer_ids: Sequence[str],
    *,
    now: datetime | None = None,
) -> BatchResult[str]:
    """Take customers from the pool for `user`.

    Advisors are held to the daily claim limit, the holding cap and the cooling period;
    managers, who may assign any pool customer to anyone, are not.
    """
    now = now or utcnow()
    wanted = list(dict.fromkeys(customer_ids))
    result: BatchResult[str] = BatchResult()
    limited = not user.is_staff_manager
    claims_left = holding_room = len(wanted)
    if limited:
        # One claim of an advisor at a time, so the counts below stay true until it commits
        # (SQLite's single writer already does this). NO KEY UPDATE: rows that merely refer
        # to the advisor (history, notifications) are not held up.
        await session.execute(
            select(User.id).where(User.id == user.id).with_for_update(key_share=True)
        )
        claims_left = settings.pool_daily_claim_limit - await claims_today(session, user.id, now)
        holding_room = settings.pool_holding_cap - await holding(session, user.id)
    cooling_since = now - timedelta(days=settings.pool_cooling_days)

    found = await _load(session, wanted)
    candidates: list[str] = []
    for customer_id in wanted:
        customer = found.get(customer_id)
        if customer is None:
            result.fail(customer_id, Refusal.NOT_FOUND, NOT_FOUND)
        elif customer.owner_id is not None:
            result.fail(customer_id, Refusal.NOT_IN_POOL, NOT_IN_POOL)
        elif customer.is_frozen:
            result.fail(customer_id, Refusal.FROZEN, FROZEN)
        elif (
            limited
            and customer.previous_owner_id == user.id
            and customer.pool_entered_at is not None
            and customer.pool_entered_at > cooling_since
        ):
            result.fail(customer_id, Refusal.COOLING, COOLING)
        elif claims_left <= 0:
            result.fail(customer_id, Refusal.DAILY_LIMIT, DAILY_LIMIT)
        elif holding_room <= 0:
            result.fail(customer_id, Refusal.CAP_REACHED, HOLDING_CAP)
        else:
            candidates.append(customer_id)
            claims_left -= 1
            holding_room -= 1

    taken: set[str] = set()
    for start in range(0, len(candidates), _CHUNK):
        rows = await session.execute(
            update(Customer)
            .where(
                Customer.id.in_(candidates[start : start + _CHUNK]),
                Customer.owner_id.is_(None),  # whoever commits first wins; the other gets 0 rows
                Customer.is_frozen.is_(False),
            )
            .values(
                owner_id=user.id,
                assigned_at=now,
                assigned_by_id=user.id,
                pool_entered_at=None,
                pool_entry_reason=None,
                claim_count=Customer.claim_count + 1,
                updated_at=now,
            )
            .returning(Customer.id)
            .execution_options(synchronize_session=False)
        )
        taken.update(rows.scalars())
    for customer_id in candidates:
        if customer_id in taken:
            result.done.append(customer_id)
        else:
            # Another claim or assignment was first.
            result.fail(customer_id, Refusal.NOT_IN_POOL, NOT_IN_POOL)
    await _history(
        session,
        [(customer_id, None) for customer_id in result.done],
        to=user.id,
        by=user.id,
        reason=None,
        channel=PoolChannel.claim,
        at=now,
    )
    count_on_commit(session, POOL_CLAIMS, len(result.done))
    _expire(session, found.values())
    return result


def release_refusal(
    user: User, customer: Customer | None, settings: Settings
) -> tuple[Refusal, str] | None:
    """Why `user` may not release `customer` now, or None if it may: the one rule that
    `release` applies and the console's pages offer 释放 by."""
    manager = user.is_staff_manager
    if customer is None or not (manager or customer.owner_id == user.id):
        return Refusal.NOT_FOUND, NOT_FOUND  # another's customer is none of its business
    if customer.owner_id is None:
        return Refusal.ALREADY_IN_POOL, ALREADY_IN_POOL
    if not manager and customer.contract_status in settings.pool_protected_statuses:
        return Refusal.SIGNED, SIGNED
    if not manager and customer.is_frozen:
        return Refusal.FROZEN, FROZEN
    return None


def may_release(user: User, customer: Customer, settings: Settings) -> bool:
    return release_refusal(user, customer, settings) is None


async def release(
    session: AsyncSession,
    settings: Settings,
    user: User,
    customer_ids: Sequence[str],
    reason: str,
    *,
    now: datetime | None = None,
) -> BatchResult[str]:
    """Put customers back in the pool. Advisors release only their own, and neither signed
    nor frozen ones; managers release any customer that has an owner."""
    now = now or utcnow()
    wanted = list(dict.fromkeys(customer_ids))
    result: BatchResult[str] = BatchResult()
    manager = user.is_staff_manager
    protected = settings.pool_protected_statuses

    found = await _load(session, wanted)
    candidates: list[str] = []
    for customer_id in wanted:
        refusal = release_refusal(user, found.get(customer_id), settings)
        if refusal is None:
            candidates.append(customer_id)
        else:
            result.fail(customer_id, *refusal)

    guard: list[ColumnElement[bool]] = [Customer.owner_id.is_not(None)]
    if not manager:
        guard += [
            Customer.owner_id == user.id,
            Customer.is_frozen.is_(False),
            Customer.contract_status.not_in(protected),
        ]
    released: dict[str, str] = {}
    for start in range(0, len(candidates), _CHUNK):
        chunk = candidates[start : start + _CHUNK]
        released.update(await _to_pool(session, chunk, guard, now, reason=reason))
    for customer_id in candidates:
        if customer_id in released:
            result.done.append(customer_id)
        else:
            result.fail(customer_id, Refusal.CHANGED, CHANGED)  # someone moved it meanwhile
    await _history(
        session,
        list(released.items()),
        to=None,
        by=user.id,
        reason=reason,
        channel=PoolChannel.release,
        at=now,
    )
    _expire(session, found.values())
    return result


async def release_one(
    session: AsyncSession, settings: Settings, user: User, customer_id: str, reason: str
) -> BatchResult[Customer]:
    """Release one customer; when it moved, `done` holds it as the database now has it."""
    released = await release(session, settings, user, [customer_id], reason)
    result: BatchResult[Customer] = BatchResult(failed=released.failed)
    if released.done:
        result.done.append(await get_customer(session, customer_id))
    return result


async def _to_pool(
    session: AsyncSession,
    ids: Sequence[str],
    guard: Sequence[ColumnElement[bool]],
    now: datetime,
    *,
    reason: str,
    recycled: bool = False,
) -> dict[str, str]:
    """Move the customers that still pass `guard` to the pool, saying why; {customer id: old
    owner}. A customer the system takes back (`recycled`) counts one more transfer (流转)."""
    # The same `now` as pool_entered_at: summary.py tells a recycled arrival by the two being equal.
    transfer: dict[str, Any] = (
        {"transfer_count": Customer.transfer_count + 1, "last_transferred_at": now}
        if recycled
        else {}
    )
    rows = await session.execute(
        update(Customer)
        .where(Customer.id.in_(ids), *guard)
        .values(
            # SET expressions read the row as it was: this is the owner being replaced.
            previous_owner_id=Customer.owner_id,
            owner_id=None,
            pool_entered_at=now,
            pool_entry_reason=reason,
            updated_at=now,
            **transfer,
        )
        .returning(Customer.id, Customer.previous_owner_id)
        .execution_options(synchronize_session=False)
    )
    return {str(customer_id): str(owner) for customer_id, owner in rows.all()}


async def _history(
    session: AsyncSession,
    moves: Sequence[tuple[str, str | None]],
    *,
    to: str | None,
    by: str | None,
    reason: str | None,
    channel: PoolChannel,
    at: datetime,
) -> None:
    """One history row per (customer id, previous owner)."""
    if not moves:
        return
    await session.execute(
        insert(AssignmentHistory),
        [
            {
                "id": new_id(),
                "customer_id": customer_id,
                "from_user_id": previous,
                "to_user_id": to,
                "by_user_id": by,
                "reason": reason,
                "channel": channel.value,
                "created_at": at,
            }
            for customer_id, previous in moves
        ],
    )


def _expire(session: AsyncSession, customers: Any) -> None:
    for customer in customers:
        session.expire(customer)  # reloaded if read again: an UPDATE above may have changed it


# -- the recycle job ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecycleResult:
    recycled: int = 0
    warned: int = 0


def _days(value: float) -> str:
    return f"{value:g}"


def _stale(settings: Settings, cutoff: datetime) -> ColumnElement[bool]:
    """Owned, recyclable, and neither followed up nor (re)assigned since `cutoff`.

    The clock starts at the later of the last follow-up and the assignment: a customer
    handed to a new owner a day ago is not taken from it for its previous owner's silence.
    """
    return and_(
        Customer.owner_id.is_not(None),
        Customer.is_frozen.is_(False),
        Customer.contract_status.not_in(settings.pool_protected_statuses),
        or_(Customer.last_follow_up_at.is_(None), Customer.last_follow_up_at < cutoff),
        func.coalesce(Customer.assigned_at, Customer.created_at) < cutoff,
    )


def _due(settings: Settings, last_follow_up: datetime | None, assigned: datetime) -> datetime:
    """When an owned customer goes back to the pool unless someone follows it up."""
    start = max(last_follow_up, assigned) if last_follow_up else assigned
    return start + timedelta(days=settings.pool_recycle_after_days)


async def recycle_to_pool(
    database: Database, settings: Settings, now: datetime | None = None
) -> RecycleResult:
    """Send customers nobody followed up back to the pool, and warn owners of those due soon.

    Safe to run in several workers at once: each customer moves once (guarded UPDATE) and
    its owner gets one warning a day (a per-customer, per-day key).
    """
    now = now or utcnow()
    recycled = await _recycle(database, settings, now)
    warned = await _warn(database, settings, now) if settings.pool_recycle_warning_days else 0
    if recycled or warned:
        log.info("public pool recycle", recycled=recycled, warned=warned)
    return RecycleResult(recycled=recycled, warned=warned)


async def _recycle(database: Database, settings: Settings, now: datetime) -> int:
    cutoff = now - timedelta(days=settings.pool_recycle_after_days)
    reason = f"超过{_days(settings.pool_recycle_after_days)}天未跟进，自动回收"
    recycled, after = 0, ""
    while True:
        async with database.writer() as session:
            ids = list(
                await session.scalars(
                    select(Customer.id)
                    .where(_stale(settings, cutoff), Customer.id > after)
                    .order_by(Customer.id)
                    .limit(_JOB_BATCH)
                    # Rows a concurrent run (or request) holds are left to it: no waiting,
                    # no deadlock between runs locking the same rows in another order.
                    .with_for_update(key_share=True, skip_locked=True)
                )
            )
            if not ids:
                return recycled
            # The guard is checked again on the row as it is when the UPDATE reaches it.
            moved = await _to_pool(
                session, ids, [_stale(settings, cutoff)], now, reason=reason, recycled=True
            )
            await _history(
                session,
                list(moved.items()),
                to=None,
                by=None,
                reason=reason,
                channel=PoolChannel.auto_recycle,
                at=now,
            )
            await session.commit()
        POOL_RECYCLES.inc(len(moved))
        recycled += len(moved)
        if len(ids) < _JOB_BATCH:
            return recycled
        after = ids[-1]


def warning_key(customer_id: str, now: datetime) -> str:
    return f"pool_warning:{customer_id}:{clock.business_day(now).isoformat()}"


async def _warn(database: Database, settings: Settings, now: datetime) -> int:
    warn_from = now - timedelta(
        days=settings.pool_recycle_after_days - settings.pool_recycle_warning_days
    )
    warned, after = 0, ""
    while True:
        async with database.writer() as session:
            rows = (
                await session.execute(
                    select(
                        Customer.id,
                        Customer.name,
                        Customer.phone,
                        Customer.owner_id,
                        Customer.last_follow_up_at,
                        func.coalesce(Customer.assigned_at, Customer.created_at),
                    )
                    .where(_stale(settings, warn_from), Customer.id > after)
                    .order_by(Customer.id)
                    .limit(_JOB_BATCH)
                    # A concurrent run holding a customer warns it; this one passes it by.
                    # Even once it commits, its warning's key keeps this run from another.
                    .with_for_update(of=Customer, key_share=True, skip_locked=True)
                )
            ).all()
            if not rows:
                return warned
            warned += await _warn_batch(session, settings, rows, now)
            await session.commit()
        if len(rows) < _JOB_BATCH:
            return warned
        after = rows[-1][0]


async def _warn_batch(
    session: AsyncSession, settings: Settings, rows: Sequence[Any], now: datetime
) -> int:
    owners = {row[3] for row in rows}
    keys = {row[0]: warning_key(row[0], now) for row in rows}
    sent_today = await NotificationRepository(session).already_told(
        event=WARNING_EVENT,
        advisor_ids=owners,
        fold_keys=keys.values(),
        # The keys name the day, so only today's can match: two days back is bound enough.
        since=utcnow() - timedelta(days=2),
    )
    users = await session.execute(select(User.id, User.openid).where(User.id.in_(owners)))
    openids: dict[str, str | None] = {str(row[0]): row[1] for row in users}
    warned = 0
    for customer_id, name, phone, owner_id, last_follow_up, assigned in rows:
        due = _due(settings, last_follow_up, assigned)
        if due <= now or keys[customer_id] in sent_today:
            continue
        queued = await tell_advisor(
            session,
            settings,
            Recipient(owner_id, openids.get(owner_id)),
            event=WARNING_EVENT,
            template=TemplateName.customer_action,
            values={
                "title": WARNING_TITLE,
                "time": due.isoformat(),
                "phone": phone,
                "customer_name": name,
            },
            page=f"pages/customer/detail?id={customer_id}",
            fold_key=keys[customer_id],
            fold_window=timedelta(days=1),
        )
        if not queued.folded:
            warned += 1
    return warned
