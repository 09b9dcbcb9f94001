"""Wire shapes of customers, follow-ups and assignment, camelCase as the original's."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from wxcrm.core.ids import OBJECT_ID_PATTERN
from wxcrm.core.types import in_date_range

ObjectId = Annotated[str, StringConstraints(pattern=OBJECT_ID_PATTERN.pattern)]
MAX_BATCH = 10_000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)


class CustomerCreateIn(_In):
    name: str = Field(min_length=1, max_length=64)
    phone: str = Field(min_length=1, max_length=32)
    wechat_id: str | None = Field(None, alias="wechatId", max_length=64)
    lead_source: str = Field("其他", alias="leadSource", max_length=32)
    service_category: str | None = Field(None, alias="serviceCategory", max_length=32)
    contract_status: str = Field("待定", alias="contractStatus", max_length=16)
    lead_level: str | None = Field(None, alias="leadLevel", max_length=8)
    address: str | None = Field(None, max_length=255)
    remarks: str | None = Field(None, max_length=2000)


class CustomerUpdateIn(_In):
    name: str | None = Field(None, min_length=1, max_length=64)
    phone: str | None = Field(None, min_length=1, max_length=32)
    wechat_id: str | None = Field(None, alias="wechatId", max_length=64)
    lead_source: str | None = Field(None, alias="leadSource", max_length=32)
    service_category: str | None = Field(None, alias="serviceCategory", max_length=32)
    contract_status: str | None = Field(None, alias="contractStatus", max_length=16)
    lead_level: str | None = Field(None, alias="leadLevel", max_length=8)
    address: str | None = Field(None, max_length=255)
    remarks: str | None = Field(None, max_length=2000)
    is_frozen: bool | None = Field(None, alias="isFrozen")


class SortField(StrEnum):
    created_at = "createdAt"
    updated_at = "updatedAt"
    name = "name"
    phone = "phone"
    last_follow_up_at = "lastFollowUpTime"


class AssignIn(_In):
    assigned_to: ObjectId = Field(alias="assignedTo")
    assignment_reason: str | None = Field(None, alias="assignmentReason", max_length=200)


class BatchAssignIn(AssignIn):
    customer_ids: list[ObjectId] = Field(alias="customerIds", min_length=1, max_length=MAX_BATCH)


class PoolAssignIn(_In):
    customer_ids: list[ObjectId] = Field(alias="customerIds", min_length=1, max_length=MAX_BATCH)
    assigned_to: ObjectId = Field(alias="assignedTo")
    reason: str | None = Field(None, max_length=200)


class FollowUpMethod(StrEnum):
    phone = "电话"
    wechat = "微信"
    meeting = "面谈"
    other = "其他"


class FollowUpIn(_In):
    method: FollowUpMethod
    content: str = Field(min_length=1, max_length=2000)
    next_follow_up_at: datetime | date | None = Field(None, alias="nextFollowUpAt")

    @field_validator("next_follow_up_at", mode="before")
    @classmethod
    def _a_date_alone_is_a_date(cls, value: object) -> object:
        # "2030-01-03" would otherwise be read as a naive datetime and refused.
        if isinstance(value, str) and len(value.strip()) == 10:
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                return value
        return value

    @field_validator("next_follow_up_at")
    @classmethod
    def _aware(cls, value: datetime | date | None) -> datetime | date | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError("时间需带时区，例如 2024-01-01T10:00:00+08:00")
        return None if value is None else in_date_range(value)
