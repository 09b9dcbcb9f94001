"""The public pool (公海) over HTTP: list it, claim from it, release to it.

Included in the app before the records router: `/api/customers/public-pool` must not be
taken for a customer id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.core.pagination import Page, PageDep
from wxcrm.customers.batch import BatchResult, refusal_error
from wxcrm.customers.pool import service
from wxcrm.customers.pool.schemas import BatchReleaseIn, ClaimIn, ReleaseIn
from wxcrm.customers.schemas import BatchResultOut, CustomerId, CustomerOut
from wxcrm.users.deps import CurrentUser

router = APIRouter(prefix="/api/customers", tags=["public pool"])


@router.get("/public-pool")
async def list_public_pool(
    session: SessionDep,
    user: CurrentUser,
    page: PageDep,
    search: Annotated[
        str | None, Query(max_length=64, description="姓名、手机号或客户编号")
    ] = None,
    lead_source: Annotated[str | None, Query(alias="leadSource", max_length=32)] = None,
    service_category: Annotated[str | None, Query(alias="serviceCategory", max_length=32)] = None,
    lead_level: Annotated[str | None, Query(alias="leadLevel", max_length=8)] = None,
) -> Envelope[Page[CustomerOut]]:
    """Customers in the public pool, newest arrivals first (advisors: those they may claim)."""
    filters = service.PoolFilters(
        search=search,
        lead_source=lead_source,
        service_category=service_category,
        lead_level=lead_level,
    )
    rows, total = await service.list_pool(
        session, user, filters, offset=page.offset, limit=page.limit
    )
    items = [CustomerOut.of(c) for c in rows]
    return Envelope[Page[CustomerOut]](
        data=Page[CustomerOut].of(items, total, page), message="获取公海客户成功"
    )


@router.post("/public-pool/claim")
async def claim(
    body: ClaimIn, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> Envelope[BatchResultOut]:
    """Claim customers from the public pool for oneself."""
    result = await service.claim(session, settings, user, body.customer_ids)
    return _batch_answer("领取完成", result)


@router.post("/batch-release-to-pool")
async def batch_release(
    body: BatchReleaseIn, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> Envelope[BatchResultOut]:
    """Release customers to the public pool (advisors: their own, unsigned, unfrozen)."""
    result = await service.release(session, settings, user, body.customer_ids, body.reason)
    return _batch_answer("批量释放完成", result)


@router.post("/{customer_id}/release-to-pool")
async def release(
    customer_id: CustomerId,
    body: ReleaseIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> Envelope[CustomerOut]:
    """Release one customer to the public pool."""
    result = await service.release_one(session, settings, user, customer_id, body.reason)
    if result.failed:
        raise refusal_error(result.failed[0])  # 404 not there (or not one's own), else 409
    return Envelope[CustomerOut](data=CustomerOut.of(result.done[0]), message="释放成功")


def _batch_answer(prefix: str, result: BatchResult[str]) -> Envelope[BatchResultOut]:
    return Envelope[BatchResultOut](
        data=BatchResultOut.of(result),
        message=f"{prefix}：成功 {len(result.done)} 个，失败 {len(result.failed)} 个",
    )
