"""Wire shapes every customer capability shares: the customer, ids, a batch's answer.
camelCase on the wire, as the original system's."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Self

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from wxcrm.core.ids import OBJECT_ID_PATTERN
from wxcrm.customers.batch import BatchResult
from wxcrm.customers.models import Customer
from wxcrm.customers.needs import HOUSEHOLD_FIELDS

ObjectId = Annotated[str, StringConstraints(pattern=OBJECT_ID_PATTERN.pattern)]
CustomerId = Annotated[str, Path(pattern=OBJECT_ID_PATTERN.pattern, description="客户 _id")]
MAX_BATCH = 10_000


# A request body's shape: unknown keys refused, text stripped, fields by name or alias.
# (No docstring: OpenAPI would give it to every body that has none of its own.)
class InModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)


# -- answers ---------------------------------------------------------------------------------


class OutModel(BaseModel):
    """An answer's shape: camelCase on the wire, as the original system's (`_id` explicit).

    Answers are validated from dicts keyed by those wire names (what the services return),
    or built by field name.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        json_schema_serialization_defaults_required=True,
    )


class CustomerOut(OutModel):
    """A customer (线索) as staff see it."""

    id: str = Field(alias="_id", description="客户记录 _id")
    customer_id: str = Field(description="客户编号：CUS + 11 位数字")
    name: str
    phone: str | None = Field(description="手机号；只有微信号的客户为 null")
    phone_verified: bool = Field(description="手机号经微信验证")
    wechat_id: str | None
    id_card_number: str | None
    lead_source: str
    service_category: str | None
    contract_status: str
    lead_level: str | None
    address: str | None
    area: str | None
    remarks: str | None
    # The 家政 needs.
    salary_budget: int | None = Field(description="薪资预算，元/月")
    expected_start_date: date | None = Field(description="期望上户日期")
    expected_delivery_date: date | None = Field(description="预产期")
    home_area: int | None = Field(description="家庭面积，平方米")
    family_size: int | None = Field(description="家庭人口")
    rest_schedule: str | None = Field(description="休息方式")
    service_days: int | None = Field(description="服务天数")
    age_requirement: str | None
    gender_requirement: str | None
    origin_requirement: str | None
    education_requirement: str | None
    deal_amount: float | None = Field(description="成交金额，元")
    need_order_type: str | None
    need_working_hours: str | None
    need_salary: str | None
    need_rest_time: str | None
    need_family_members: str | None
    need_service_address: str | None
    need_house_area: str | None
    need_work_content: str | None
    need_remarks: str | None
    need_service_period: str | None
    need_onboarding_time: str | None
    # Ownership, the pool, freezing.
    is_frozen: bool
    frozen_at: datetime | None
    frozen_by: str | None
    frozen_reason: str | None
    assigned_to: str | None = Field(description="负责顾问的 _id；在公海中为 null")
    assigned_by: str | None
    assigned_at: datetime | None
    assignment_reason: str | None
    created_by: str | None
    last_updated_by: str | None
    in_public_pool: bool
    public_pool_entry_time: datetime | None
    public_pool_entry_reason: str | None
    claim_count: int = Field(description="从公海领取的次数")
    transfer_count: int = Field(description="被系统流转（超期收回公海）的次数")
    last_transferred_at: datetime | None
    last_follow_up_time: datetime | None
    last_follow_up_by: str | None
    signed_at: datetime | None = Field(description="最近一次成为已签约的时间")
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


# The 家政 columns, stored and shown under the same names.
_HOUSEHOLD_WIRE = tuple((field, to_camel(field)) for field in HOUSEHOLD_FIELDS)


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
        **{wire: getattr(customer, field) for field, wire in _HOUSEHOLD_WIRE},
        "isFrozen": customer.is_frozen,
        "frozenAt": customer.frozen_at,
        "frozenBy": customer.frozen_by_id,
        "frozenReason": customer.frozen_reason,
        "assignedTo": customer.owner_id,
        "assignedBy": customer.assigned_by_id,
        "assignedAt": customer.assigned_at,
        "assignmentReason": customer.assignment_reason,
        "createdBy": customer.created_by_id,
        "lastUpdatedBy": customer.last_updated_by_id,
        "inPublicPool": customer.owner_id is None,
        "publicPoolEntryTime": customer.pool_entered_at,
        "publicPoolEntryReason": customer.pool_entry_reason,
        "claimCount": customer.claim_count or 0,
        "transferCount": customer.transfer_count or 0,
        "lastTransferredAt": customer.last_transferred_at,
        "lastFollowUpTime": customer.last_follow_up_at,
        "lastFollowUpBy": customer.last_follow_up_by_id,
        "signedAt": customer.signed_at,
        "createdAt": customer.created_at,
        "updatedAt": customer.updated_at,
    }


class BatchError(OutModel):
    customer_id: str
    error: str = Field(description="失败原因")


class BatchResultOut(OutModel):
    """Per customer asked for: counted as done, or listed in errors."""

    success: int = Field(description="成功个数")
    failed: int = Field(description="失败个数")
    errors: list[BatchError]

    @classmethod
    def of(cls, result: BatchResult[Any], **extra: Any) -> Self:
        """The counts and the refused customers with their messages. `extra`, by wire name,
        fills a subclass's fields."""
        errors = [{"customerId": f.customer_id, "error": f.message} for f in result.failed]
        fields = {"success": len(result.done), "failed": len(result.failed), "errors": errors}
        return cls.model_validate(fields | extra)
