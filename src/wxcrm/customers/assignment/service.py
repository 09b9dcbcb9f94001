"""Assigning customers: one, a batch, or from the public pool. Each customer
gets a history row; each new owner gets one notification per assignment, queued in the
same transaction, so the assignment commits whatever WeChat later does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.errors import ValidationFailed
from wxcrm.core.ids import new_id
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.batch import BatchResult, Refusal
from wxcrm.customers.models import AssignmentHistory, Customer
from wxcrm.notifications.notify import Recipient, tell_advisor
from wxcrm.notifications.outbox import Queued
from wxcrm.notifications.templates import TemplateName
from wxcrm.users.models import Role, User
from wxcrm.users.repository import UserRepository

# SQLite allows a limited number of bound parameters per statement.
_CHUNK = 2_000
_HISTORY = cast(Table, AssignmentHistory.__table__)


class AssignChannel(StrEnum):
    console = "console"
    miniprogram = "miniprogram"
    batch = "batch"
    pool = "pool_assign"


# What the notification calls the assignment when no reason is given (the original's words).
DEFAULT_SOURCE = {
    AssignChannel.console: "手动分配",
    AssignChannel.miniprogram: "手动分配",
    AssignChannel.batch: "批量分配",
    AssignChannel.pool: "从公海分配",
}
NOT_FOUND = "客户不存在"
ALREADY_OWNED = "客户已分配给该顾问"
NOT_IN_POOL = "客户不在公海中"
FROZEN = "客户已冻结，不能分配"


@dataclass
class Assignment:
    """What an assignment did: per customer, moved (`result.done`, the rows) or refused; and
    the notification queued for the new owner, with the event it was built from."""

    result: BatchResult[Customer] = field(default_factory=BatchResult)
    notification: Queued | None = None
    notification_data: dict[str, Any] | None = None


class AssigneeProblem(StrEnum):
    """Why a staff member cannot be given customers (the staff mini program's words)."""

    missing = "指定的负责人不存在"
    inactive = "指定的负责人未激活"
    not_advisor = "指定的负责人角色不允许被分配"


async def find_assignee(session: AsyncSession, user_id: str) -> User | AssigneeProblem:
    """The active advisor whose id is `user_id`, or why there is none: customers belong to
    advisors (managers see every customer anyway)."""
    user = await UserRepository(session).get(user_id)
    if user is None:
        return AssigneeProblem.missing
    if not user.is_active:
        return AssigneeProblem.inactive
    if user.role != Role.advisor.value:
        return AssigneeProblem.not_advisor
    return user


async def assignee(session: AsyncSession, user_id: str) -> User:
    found = await find_assignee(session, user_id)
    if isinstance(found, AssigneeProblem):
        raise ValidationFailed.on_field("assignedTo", "被分配的顾问不存在或已停用")
    return found


async def assign_to(
    session: AsyncSession,
    settings: Settings,
    *,
    customer_ids: Sequence[str],
    assigned_to: str,
    by: User,
    reason: str | None,
    channel: AssignChannel,
) -> Assignment:
    """Assign the customers to the active advisor whose id is `assigned_to` (400 if none)."""
    to = await assignee(session, assigned_to)
    return await assign(
        session,
        settings,
        customer_ids=customer_ids,
        to=to,
        by=by,
        reason=reason,
        channel=channel,
    )


async def assign_one(
    session: AsyncSession,
    settings: Settings,
    *,
    customer_id: str,
    assigned_to: str,
    by: User,
    reason: str | None,
    channel: AssignChannel,
) -> Assignment:
    """Assign one customer; when it moved, it is reloaded as it now is, for the answer."""
    assignment = await assign_to(
        session,
        settings,
        customer_ids=[customer_id],
        assigned_to=assigned_to,
        by=by,
        reason=reason,
        channel=channel,
    )
    if assignment.result.done:
        await session.refresh(assignment.result.done[0])
    return assignment


async def assign(
    session: AsyncSession,
    settings: Settings,
    *,
    customer_ids: Sequence[str],
    to: User,
    by: User,
    reason: str | None,
    channel: AssignChannel,
) -> Assignment:
    """Move the customers to `to`, write their history, and queue one notification."""
    assignment = Assignment()
    result = assignment.result
    wanted = list(dict.fromkeys(customer_ids))  # each id once, in the order given
    found: dict[str, Customer] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows = await session.scalars(
            select(Customer).where(Customer.id.in_(chunk)).with_for_update()
        )
        found.update({customer.id: customer for customer in rows})

    for customer_id in wanted:
        customer = found.get(customer_id)
        if customer is None:
            result.fail(customer_id, Refusal.NOT_FOUND, NOT_FOUND)
        elif customer.owner_id == to.id:
            result.fail(customer_id, Refusal.ALREADY_ASSIGNED, ALREADY_OWNED)
        elif customer.is_frozen:
            result.fail(customer_id, Refusal.FROZEN, FROZEN)
        elif channel is AssignChannel.pool and customer.owner_id is not None:
            result.fail(customer_id, Refusal.NOT_IN_POOL, NOT_IN_POOL)
        else:
            result.done.append(customer)
    if not result.done:
        return assignment

    now = utcnow()
    data = notification_data(result.done, to, by, reason, channel, now)
    assignment.notification_data = data
    history = []
    for customer in result.done:
        history.append(
            {
                "id": new_id(),
                "customer_id": customer.id,
                "from_user_id": customer.owner_id,
                "to_user_id": to.id,
                "by_user_id": by.id,
                "reason": reason,
                "channel": channel.value,
                "created_at": now,
            }
        )
    ids = [customer.id for customer in result.done]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        # One statement per chunk: batches of thousands must not cost a query each.
        await session.execute(
            update(Customer)
            .where(Customer.id.in_(chunk))
            .values(
                previous_owner_id=Customer.owner_id,
                owner_id=to.id,
                assigned_at=now,
                assigned_by_id=by.id,
                assignment_reason=reason,
                pool_entered_at=None,
                pool_entry_reason=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    # Core insert: the ORM's bulk insert splits rows whose None keys differ (pool customers
    # have no previous owner) into thousands of statements.
    await session.execute(insert(_HISTORY), history)
    for customer in result.done:
        session.expire(customer)  # reloaded if read again: the UPDATE above changed it
    assignment.notification = await _notify(session, settings, to, data)
    return assignment


def notification_data(
    customers: Sequence[Customer],
    to: User,
    by: User,
    reason: str | None,
    channel: AssignChannel,
    at: datetime,
) -> dict[str, Any]:
    """The event the deployed cloud function expects (README: The cloud function), and the
    direct message's source."""
    first = customers[0]
    # A batch is named as one ("1个客户") even when it moved a single customer.
    single = len(customers) == 1 and channel in (AssignChannel.console, AssignChannel.miniprogram)
    data: dict[str, Any] = {
        "assignedToId": to.id,
        "customerName": first.name if single else f"{len(customers)}个客户",
        "source": reason or DEFAULT_SOURCE[channel],
        "assignerName": by.name,
        "customerId": first.id,
        "assignTime": at.isoformat(),
        "customerPhone": first.phone if single else "",
        "serviceCategory": (first.service_category or "") if single else "",
        "leadSource": first.lead_source if single else "",
    }
    if to.openid:
        data["assignedToOpenid"] = to.openid  # the function then needs no lookup
    return data


async def _notify(
    session: AsyncSession, settings: Settings, to: User, data: dict[str, Any]
) -> Queued:
    return await tell_advisor(
        session,
        settings,
        Recipient(to.id, to.openid),
        event="customer_assigned",
        template=TemplateName.customer_assigned,
        values={
            "customer_name": data["customerName"],
            "reason": data["source"],
            "assigner": data["assignerName"],
            "time": data["assignTime"],
        },
        page=f"pages/customer/detail?id={data['customerId']}",
        # The deployed cloud function's own event, when the settings send through it.
        cloud_event={"type": "sendCustomerAssignNotify", "notificationData": data},
    )
