"""Advisors' subscriptions to templates and the sends WeChat still allows them (credits).

One-time subscriptions allow one message per "accept", and accepts accumulate;
WeChat reports no count, so we keep the ledger: +1 per accept, −1 per send, 0 after 43101.
Every change of `AdvisorSubscription.credits` is made by a function of this module.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.models import utcnow
from wxcrm.notifications.models import AdvisorSubscription

NO_CREDIT = "顾问没有可用的订阅次数（需在小程序中同意接收订阅消息）"
NO_OPENID = "顾问未绑定微信，无法发送订阅消息"
NO_TEMPLATE = "未配置订阅消息模板"


async def get_subscription(
    session: AsyncSession, advisor_id: str, template_id: str, *, for_update: bool = False
) -> AdvisorSubscription | None:
    query = select(AdvisorSubscription).where(
        AdvisorSubscription.advisor_id == advisor_id,
        AdvisorSubscription.template_id == template_id,
    )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def record_decision(
    session: AsyncSession,
    *,
    advisor_id: str,
    template_id: str,
    openid: str | None,
    accepted: bool,
    add_credit: bool,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AdvisorSubscription:
    """Record an advisor's answer to a subscription prompt for one template.

    An accept marks the subscription active and, when `add_credit`, allows one more send;
    a reject or ban marks it inactive but keeps sends granted earlier (WeChat keeps them).
    """
    subscription = await get_subscription(session, advisor_id, template_id, for_update=True)
    if subscription is None:
        subscription = AdvisorSubscription(
            advisor_id=advisor_id, template_id=template_id, credits=0
        )
        session.add(subscription)
    subscription.openid = openid or subscription.openid
    subscription.subscribed = accepted
    subscription.subscribe_time = at or utcnow()
    if data is not None:
        subscription.subscribe_data = data
    if accepted and add_credit:
        subscription.credits = (subscription.credits or 0) + 1
    await session.flush()
    return subscription


async def grant_credits(
    session: AsyncSession,
    *,
    advisor_id: str,
    openid: str | None,
    template_id: str,
    credits: int,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AdvisorSubscription:
    """Subscribe an advisor to a template with `credits` more sends, as that many accepts
    would: for seeding (the demo, the benchmarks, the tests). Prompts answered in the mini
    program go through `record_decision`, one send each."""
    subscription = await record_decision(
        session,
        advisor_id=advisor_id,
        template_id=template_id,
        openid=openid,
        accepted=True,
        add_credit=False,
        data=data,
        at=at,
    )
    subscription.credits += credits
    await session.flush()
    return subscription


async def spend_credit(session: AsyncSession, advisor_id: str, template_id: str) -> bool:
    """Take one send from the ledger; False when none is left."""
    result = await session.execute(
        update(AdvisorSubscription)
        .where(
            AdvisorSubscription.advisor_id == advisor_id,
            AdvisorSubscription.template_id == template_id,
            AdvisorSubscription.credits > 0,
        )
        .values(credits=AdvisorSubscription.credits - 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def take_credits(
    session: AsyncSession, advisor_id: str, template_id: str, wanted: int
) -> int:
    """Take up to `wanted` sends of one advisor's template for a batch; returns how many.

    The row stays locked until the caller's transaction ends, so two workers claiming for
    one advisor cannot both take its last send.
    """
    matches = (
        AdvisorSubscription.advisor_id == advisor_id,
        AdvisorSubscription.template_id == template_id,
    )
    available = await session.scalar(
        select(AdvisorSubscription.credits).where(*matches).with_for_update()
    )
    granted = min(wanted, available or 0)
    if granted > 0:
        await session.execute(
            update(AdvisorSubscription)
            .where(*matches)
            .values(credits=AdvisorSubscription.credits - granted)
        )
    return granted


async def give_back_credit(session: AsyncSession, advisor_id: str, template_id: str) -> None:
    """Return a send taken for a delivery that WeChat never made: the grant is unspent."""
    await session.execute(
        update(AdvisorSubscription)
        .where(
            AdvisorSubscription.advisor_id == advisor_id,
            AdvisorSubscription.template_id == template_id,
        )
        .values(credits=AdvisorSubscription.credits + 1)
    )


async def zero_credits(session: AsyncSession, advisor_id: str, template_id: str) -> None:
    """WeChat said 43101: whatever our ledger thought, nothing is left."""
    await session.execute(
        update(AdvisorSubscription)
        .where(
            AdvisorSubscription.advisor_id == advisor_id,
            AdvisorSubscription.template_id == template_id,
        )
        .values(credits=0)
        .execution_options(synchronize_session=False)
    )


class CreditsOnHand:
    """The sends left to the advisors of a batch of messages, read with one query when
    first asked (a batch whose events all fold asks nothing)."""

    def __init__(self, session: AsyncSession, pairs: Collection[tuple[str, str]]) -> None:
        self._session = session
        self._pairs = sorted(set(pairs))
        self._credits: dict[tuple[str, str], int] | None = None

    async def of(self, advisor_id: str, template_id: str) -> int:
        if self._credits is None:
            self._credits = await _credits_of(self._session, self._pairs)
        return self._credits.get((advisor_id, template_id), 0)


async def _credits_of(
    session: AsyncSession, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    if not pairs:
        return {}
    rows = await session.execute(
        select(
            AdvisorSubscription.advisor_id,
            AdvisorSubscription.template_id,
            AdvisorSubscription.credits,
        ).where(
            AdvisorSubscription.advisor_id.in_({advisor for advisor, _ in pairs}),
            AdvisorSubscription.template_id.in_({template for _, template in pairs}),
        )
    )
    return {(advisor, template): credits or 0 for advisor, template, credits in rows}


async def unsendable_reason(
    credits: CreditsOnHand,
    *,
    advisor_id: str,
    openid: str | None,
    template_id: str,
    long_term: bool,
) -> str | None:
    """Why a direct message to this advisor cannot be sent now, or None if it can.

    Checked when queueing, so the outbox row says why at once; the worker checks again
    when it claims the row (credits may have gone meanwhile).
    """
    if not openid:
        return NO_OPENID
    if not template_id:
        return NO_TEMPLATE
    if not long_term and await credits.of(advisor_id, template_id) < 1:
        return NO_CREDIT
    return None


async def available_credits(session: AsyncSession, advisor_id: str, template_id: str) -> int:
    value = await session.scalar(
        select(AdvisorSubscription.credits).where(
            AdvisorSubscription.advisor_id == advisor_id,
            AdvisorSubscription.template_id == template_id,
        )
    )
    return int(value or 0)


async def subscriptions_of(
    session: AsyncSession, advisor_ids: Collection[str]
) -> Sequence[AdvisorSubscription]:
    """Every template subscription of these advisors (the console's advisor table)."""
    if not advisor_ids:
        return []
    rows = await session.scalars(
        select(AdvisorSubscription).where(AdvisorSubscription.advisor_id.in_(list(advisor_ids)))
    )
    return rows.all()
