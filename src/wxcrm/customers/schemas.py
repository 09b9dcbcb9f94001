"""Wire shapes every customer capability shares: the customer, ids, a batch's answer.
camelCase on the wire, as the original system's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from wxcrm.core.ids import OBJECT_ID_PATTERN
from wxcrm.customers.batch import BatchResult
from wxcrm.customers.models import Customer

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
