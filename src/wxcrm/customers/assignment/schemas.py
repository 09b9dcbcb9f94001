"""Wire shapes of assignment: what to assign to whom, and the notification's event."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from wxcrm.customers.schemas import (
    MAX_BATCH,
    BatchResultOut,
    CustomerOut,
    InModel,
    ObjectId,
    OutModel,
)


class AssignIn(InModel):
    assigned_to: ObjectId = Field(alias="assignedTo")
    assignment_reason: str | None = Field(None, alias="assignmentReason", max_length=200)


class BatchAssignIn(AssignIn):
    customer_ids: list[ObjectId] = Field(alias="customerIds", min_length=1, max_length=MAX_BATCH)


class PoolAssignIn(InModel):
    customer_ids: list[ObjectId] = Field(alias="customerIds", min_length=1, max_length=MAX_BATCH)
    assigned_to: ObjectId = Field(alias="assignedTo")
    reason: str | None = Field(None, max_length=200)


class AssignNotificationData(OutModel):
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


class BatchAssignOut(BatchResultOut):
    notification_data: AssignNotificationData | None = Field(description="无客户分配成功时为 null")
