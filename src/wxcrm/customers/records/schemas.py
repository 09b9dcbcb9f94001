"""Wire shapes of the customer records: create and update, the list's sort, the detail and
its timeline, follow-ups, the form's options."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator

from wxcrm.core.types import in_date_range
from wxcrm.customers.models import FollowUp
from wxcrm.customers.needs import EDUCATION_LEVELS, REST_SCHEDULES, HouseholdIn
from wxcrm.customers.schemas import CustomerOut, InModel, OutModel

# The original's alternative names for two fields (staff-api §6.3), by Python name.
_ALIASES = (("notes", "remarks"), ("service_type", "service_category"))


def fold_aliases(values: dict[str, Any]) -> dict[str, Any]:
    """`values` (by Python name) without the aliases, each given to its field when the field
    is absent or empty (the field wins), as the original did on create."""
    for alias, field in _ALIASES:
        given = values.pop(alias, None)
        if given is not None and not values.get(field):
            values[field] = given
    return values


class _CustomerFields(HouseholdIn):
    """What staff fill in on both forms, beside the 家政 fields of `HouseholdIn`."""

    wechat_id: str | None = Field(None, max_length=64)
    service_category: str | None = Field(None, max_length=32)
    lead_level: str | None = Field(None, max_length=8)
    address: str | None = Field(None, max_length=255)
    remarks: str | None = Field(None, max_length=2000)
    notes: str | None = Field(None, max_length=2000, description="remarks 的别名（旧版小程序）")
    service_type: str | None = Field(
        None, max_length=32, description="serviceCategory 的别名（旧版小程序）"
    )

    def fields(self, *, sent_only: bool = False) -> dict[str, Any]:
        """The fields by Python name, aliases folded into their fields; `sent_only`: those
        the request set (an update)."""
        return fold_aliases(self.model_dump(exclude_unset=sent_only))


class CustomerCreateIn(_CustomerFields):
    """A new customer: a name, and a phone or a WeChat id (请填写手机号或微信号)."""

    name: str = Field(min_length=1, max_length=64)
    phone: str | None = Field(None, max_length=32, description="中国大陆手机号；与微信号至少填一项")
    lead_source: str = Field("其他", max_length=32)
    contract_status: str = Field("待定", max_length=16)


class CustomerUpdateIn(_CustomerFields):
    """The fields to change; null clears an optional one. A phone or a WeChat id must remain."""

    name: str | None = Field(None, min_length=1, max_length=64)
    phone: str | None = Field(None, max_length=32)
    lead_source: str | None = Field(None, max_length=32)
    contract_status: str | None = Field(None, max_length=16)
    is_frozen: bool | None = Field(None, description="冻结（管理员、经理）")
    frozen_reason: str | None = Field(None, max_length=200, description="冻结原因（管理员、经理）")


class SortField(StrEnum):
    created_at = "createdAt"
    updated_at = "updatedAt"
    name = "name"
    phone = "phone"
    last_follow_up_at = "lastFollowUpTime"


class FollowUpMethod(StrEnum):
    phone = "电话"
    wechat = "微信"
    meeting = "面谈"
    other = "其他"


class FollowUpIn(InModel):
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


class FollowUpOut(OutModel):
    """A follow-up (跟进记录)."""

    id: str = Field(alias="_id")
    customer_id: str = Field(description="客户记录 _id")
    user_id: str = Field(description="记录人 _id")
    method: str
    content: str
    next_follow_up_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, follow_up: FollowUp) -> Self:
        return cls.model_validate(
            {
                "_id": follow_up.id,
                "customerId": follow_up.customer_id,
                "userId": follow_up.user_id,
                "method": follow_up.method,
                "content": follow_up.content,
                "nextFollowUpAt": follow_up.next_follow_up_at,
                "createdAt": follow_up.created_at,
            }
        )


class ActionEvent(OutModel):
    """The customer did something in the mini program (who in WeChat, its openid, is never
    shown to staff)."""

    type: Literal["action"]
    time: datetime
    action_type: str
    advisor_id: str
    action_data: dict[str, Any]


class FollowUpEvent(OutModel):
    type: Literal["followUp"]
    time: datetime
    user_id: str
    method: str
    content: str
    next_follow_up_at: datetime | None


class AssignmentEvent(OutModel):
    """A change of owner: from, to and by are user _ids (null: the public pool, the system)."""

    id: str = Field(alias="_id")
    customer_id: str
    from_: str | None = Field(alias="from")
    to: str | None
    by: str | None
    reason: str | None
    channel: str = Field(
        description="console, miniprogram, batch, pool_assign, claim, release, auto_recycle"
    )
    created_at: datetime
    type: Literal["assignment"]
    time: datetime


class FreezeEvent(OutModel):
    """A freeze (frozen true) or an unfreeze, with its reason; user_id: who did it."""

    type: Literal["freeze"]
    time: datetime
    frozen: bool
    reason: str | None
    user_id: str | None


TimelineEvent = Annotated[
    ActionEvent | FollowUpEvent | AssignmentEvent | FreezeEvent, Field(discriminator="type")
]


class CustomerDetailOut(CustomerOut):
    timeline: list[TimelineEvent] = Field(description="动作、跟进、分配与冻结记录，新的在前")


class CustomerOptionsOut(OutModel):
    """The choices of the customer form: the configured lists, and the 家政 record's fixed
    ones."""

    lead_source: list[str]
    service_category: list[str]
    contract_status: list[str]
    lead_level: list[str]
    rest_schedule: list[str] = Field(default=list(REST_SCHEDULES), description="休息方式")
    education_requirement: list[str] = Field(default=list(EDUCATION_LEVELS), description="学历要求")
