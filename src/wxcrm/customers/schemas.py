"""Wire shapes of customers, follow-ups and assignment, camelCase as the original's."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

from wxcrm.core.ids import OBJECT_ID_PATTERN
from wxcrm.core.types import in_date_range
from wxcrm.customers.models import Customer, FollowUp

ObjectId = Annotated[str, StringConstraints(pattern=OBJECT_ID_PATTERN.pattern)]
CustomerId = Annotated[str, Path(pattern=OBJECT_ID_PATTERN.pattern, description="客户 _id")]
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


# -- answers ---------------------------------------------------------------------------------


class _Out(BaseModel):
    """An answer's shape: camelCase on the wire, as the original system's (`_id` explicit).

    Answers are validated from dicts keyed by those wire names (what the services return),
    or built by field name.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        json_schema_serialization_defaults_required=True,
    )


class CustomerOut(_Out):
    """A customer (线索) as staff see it."""

    id: str = Field(alias="_id", description="客户记录 _id")
    customer_id: str = Field(description="客户编号：CUS + 11 位数字")
    name: str
    phone: str
    phone_verified: bool = Field(description="手机号经微信验证")
    wechat_id: str | None
    lead_source: str
    service_category: str | None
    contract_status: str
    lead_level: str | None
    address: str | None
    remarks: str | None
    is_frozen: bool
    assigned_to: str | None = Field(description="负责顾问的 _id；在公海中为 null")
    assigned_by: str | None
    assigned_at: datetime | None
    created_by: str | None
    in_public_pool: bool
    public_pool_entry_time: datetime | None
    last_follow_up_time: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, customer: Customer, **extra: Any) -> Self:
        """The one mapping of a customer row to the wire. `extra`, by wire name, fills a
        subclass's fields or overrides one.

        Validated from a dict (not `cls(...)` by field name): pydantic-core takes a dict
        in one call, and this runs once per row of every list page.
        """
        fields = _customer_fields(customer)
        fields.update(extra)
        return cls.model_validate(fields)


def _customer_fields(customer: Customer) -> dict[str, Any]:
    return {
        "_id": customer.id,
        "customerId": customer.customer_no,
        "name": customer.name,
        "phone": customer.phone,
        "phoneVerified": customer.phone_verified,
        "wechatId": customer.wechat_id,
        "leadSource": customer.lead_source,
        "serviceCategory": customer.service_category,
        "contractStatus": customer.contract_status,
        "leadLevel": customer.lead_level,
        "address": customer.address,
        "remarks": customer.remark,
        "isFrozen": customer.is_frozen,
        "assignedTo": customer.owner_id,
        "assignedBy": customer.assigned_by_id,
        "assignedAt": customer.assigned_at,
        "createdBy": customer.created_by_id,
        "inPublicPool": customer.owner_id is None,
        "publicPoolEntryTime": customer.pool_entered_at,
        "lastFollowUpTime": customer.last_follow_up_at,
        "createdAt": customer.created_at,
        "updatedAt": customer.updated_at,
    }


class FollowUpOut(_Out):
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


class ActionEvent(_Out):
    """The customer did something in the mini program."""

    type: Literal["action"]
    time: datetime
    action_type: str
    advisor_id: str
    openid: str
    action_data: dict[str, Any]


class FollowUpEvent(_Out):
    type: Literal["followUp"]
    time: datetime
    user_id: str
    method: str
    content: str
    next_follow_up_at: datetime | None


class AssignmentEvent(_Out):
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


TimelineEvent = Annotated[
    ActionEvent | FollowUpEvent | AssignmentEvent, Field(discriminator="type")
]


class CustomerDetailOut(CustomerOut):
    timeline: list[TimelineEvent] = Field(description="动作、跟进与分配记录，新的在前")


class CustomerOptionsOut(_Out):
    """The configured choices of the customer form."""

    lead_source: list[str]
    service_category: list[str]
    contract_status: list[str]
    lead_level: list[str]


class AssignNotificationData(_Out):
    """The event the assignment notification is built from (the cloud function's
    `notificationData`)."""

    # assignedToOpenid is left out when there is none: not required.
    model_config = ConfigDict(json_schema_serialization_defaults_required=False)

    assigned_to_id: str
    customer_name: str = Field(description="一个客户的姓名，或“N个客户”")
    source: str = Field(description="分配原因，或默认的来源说明")
    assigner_name: str
    customer_id: str = Field(description="（第一个）客户记录 _id")
    assign_time: str = Field(description="ISO 8601 时间")
    customer_phone: str = Field(description="仅单个客户时，否则为空字符串")
    service_category: str
    lead_source: str
    assigned_to_openid: str | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="顾问已绑定微信时才有",
    )


class AssignedCustomerOut(CustomerOut):
    """A customer just assigned, with the notification's data."""

    notification_data: AssignNotificationData | None


class MiniProgramAssignedCustomerOut(AssignedCustomerOut):
    """As the mini program's form reads it: `customerId` is the record's _id."""

    customer_id: str = Field(description="客户记录 _id（此接口中不是客户编号）")


class BatchError(_Out):
    customer_id: str
    error: str = Field(description="失败原因")


class BatchResultOut(_Out):
    """Per customer asked for: counted as done, or listed in errors."""

    success: int = Field(description="成功个数")
    failed: int = Field(description="失败个数")
    errors: list[BatchError]


class BatchAssignOut(BatchResultOut):
    notification_data: AssignNotificationData | None = Field(description="无客户分配成功时为 null")


class ImportResultOut(_Out):
    imported: int = Field(description="导入的客户数")
