"""Wire shapes of the public pool: which customers to claim or release, and why."""

from __future__ import annotations

from pydantic import Field

from wxcrm.customers.schemas import MAX_BATCH, InModel, ObjectId

MAX_CLAIM = 100


class ClaimIn(InModel):
    customer_ids: list[ObjectId] = Field(alias="customerIds", min_length=1, max_length=MAX_CLAIM)


class ReleaseIn(InModel):
    reason: str = Field(min_length=1, max_length=200, description="释放原因")


class BatchReleaseIn(ReleaseIn):
    customer_ids: list[ObjectId] = Field(alias="customerIds", min_length=1, max_length=MAX_BATCH)
