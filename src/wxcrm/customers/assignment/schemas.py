"""Wire shapes of assignment: what to assign to whom, and the notification's event."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from wxcrm.core.ids import OBJECT_ID_PATTERN, is_object_id
from wxcrm.customers.schemas import (
    MAX_BATCH,
    BatchResultOut,
    CustomerOut,
    InModel,
    ObjectId,
    OutModel,
)

MAX_REASON = 200


# The original's words for a bad assignee or reason (the staff mini program shows them).
def _assignee_id(value: object) -> object:
    if value is None or value == "":
        raise ValueError("负责人ID不能为空")
    if not is_object_id(value):
        raise ValueError("负责人ID格式不正确")
    return value


def _reason(value: object) -> object:
    if value is not None and not isinstance(value, str):
        raise ValueError("分配原因必须是文本")
    if isinstance(value, str) and len(value.strip()) > MAX_REASON:
        raise ValueError(f"分配原因不能超过{MAX_REASON}字")
    return value


AssigneeId = Annotated[str, BeforeValidator(_assignee_id)]
AssignmentReason = Annotated[str | None, BeforeValidator(_reason)]


class AssignIn(InModel):
    assigned_to: AssigneeId = Field(
        alias="assignedTo", pattern=OBJECT_ID_PATTERN.pattern, description="负责顾问的 _id"
    )
    assignment_reason: AssignmentReason = Field(
        None, alias="assignmentReason", max_length=MAX_REASON
    )


class BatchAssignIn(AssignIn):
    customer_ids: list[ObjectId] = Field(alias="customerIds", min_length=1, max_length=MAX_BATCH)


class PoolAssignIn(InModel):
    customer_ids: list[ObjectId] = Field(alias="customerIds", min_length=1, max_length=MAX_BATCH)
    assigned_to: ObjectId = Field(alias="assignedTo")
    reason: str | None = Field(None, max_length=200)


class AssignNotificationData(OutModel):
    """The event the assignment notification is built from (the cloud function's
    `notificationData`), as the original answered it: without the `assignedToOpenid` the
    cloud event also carries, an advisor's openid being none of the caller's business."""

    assigned_to_id: str
    customer_name: str = Field(description="一个客户的姓名，或“N个客户”")
    source: str = Field(description="分配原因，或默认的来源说明")
    assigner_name: str
    customer_id: str = Field(description="（第一个）客户记录 _id")
    assign_time: str = Field(description="ISO 8601 时间")
    customer_phone: str = Field(description="仅单个客户时，否则为空字符串")
    service_category: str
    lead_source: str


class AssignedCustomerOut(CustomerOut):
    """A customer just assigned, with the notification's data."""

    notification_data: AssignNotificationData | None


class BatchAssignOut(BatchResultOut):
    notification_data: AssignNotificationData | None = Field(description="无客户分配成功时为 null")
