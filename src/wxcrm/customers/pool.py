"""The public pool (公海) over HTTP: list it, claim from it, release to it.

Included in the app before the customers router: `/api/customers/public-pool` must not be
taken for a customer id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.core.errors import Conflict, NotFound
from wxcrm.core.pagination import Page, PageDep
from wxcrm.customers import pool_service
from wxcrm.customers.pool_service import PoolResult
from wxcrm.customers.schemas import MAX_BATCH, BatchResultOut, CustomerId, CustomerOut, ObjectId
from wxcrm.users.deps import CurrentUser

router = APIRouter(prefix="/api/customers", tags=["public pool"])

MAX_CLAIM = 100


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)


class ClaimIn(_In):
    customer_ids: list[ObjectId] = Field(alias="customerIds", min_length=1, max_length=MAX_CLAIM)


class ReleaseIn(_In):
    reason: str = Field(min_length=1, max_length=200, description="释放原因")


class BatchReleaseIn(ReleaseIn):
    customer_ids: list[ObjectId] = Field(alias="customerIds", min_length=1, max_length=MAX_BATCH)


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
    filters = pool_service.PoolFilters(
        search=search,
        lead_source=lead_source,
        service_category=service_category,
        lead_level=lead_level,
    )
    rows, total = await pool_service.list_pool(
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
    result = await pool_service.claim(session, settings, user, body.customer_ids)
    return _batch_answer("领取完成", result)


@router.post("/batch-release-to-pool")
async def batch_release(
    body: BatchReleaseIn, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> Envelope[BatchResultOut]:
    """Release customers to the public pool (advisors: their own, unsigned, unfrozen)."""
    result = await pool_service.release(session, settings, user, body.customer_ids, body.reason)
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
    result = await pool_service.release(session, settings, user, [customer_id], body.reason)
    if result.errors:
        error = result.errors[0]["error"]
        raise NotFound(error) if error == pool_service.NOT_FOUND else Conflict(error)
    customer = await pool_service.get_customer(session, customer_id)
    return Envelope[CustomerOut](data=CustomerOut.of(customer), message="释放成功")


def _batch_answer(prefix: str, result: PoolResult) -> Envelope[BatchResultOut]:
    done, failed = len(result.done), len(result.errors)
    data = BatchResultOut.model_validate(
        {"success": done, "failed": failed, "errors": result.errors}
    )
    return Envelope[BatchResultOut](
        data=data, message=f"{prefix}：成功 {done} 个，失败 {failed} 个"
    )
