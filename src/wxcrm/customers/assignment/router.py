"""The console's assignment endpoints: one customer, a batch, and from the public pool.
Managers only. (The staff mini program's own is in customers/staffapp.)"""

from __future__ import annotations

from fastapi import APIRouter

from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.customers.assignment import service
from wxcrm.customers.assignment.schemas import (
    AssignedCustomerOut,
    AssignIn,
    BatchAssignIn,
    BatchAssignOut,
    PoolAssignIn,
)
from wxcrm.customers.assignment.service import AssignChannel, Assignment
from wxcrm.customers.batch import refusal_error
from wxcrm.customers.models import Customer
from wxcrm.customers.schemas import CustomerId
from wxcrm.users.deps import CurrentManager

router = APIRouter(prefix="/api/customers", tags=["customers"])


@router.post("/batch-assign")
async def batch_assign(
    body: BatchAssignIn, session: SessionDep, settings: SettingsDep, user: CurrentManager
) -> Envelope[BatchAssignOut]:
    """Assign many customers to one advisor; one notification for the batch."""
    assignment = await service.assign_to(
        session,
        settings,
        customer_ids=body.customer_ids,
        assigned_to=body.assigned_to,
        by=user,
        reason=body.assignment_reason,
        channel=AssignChannel.batch,
    )
    return _batch_answer("批量分配完成", assignment)


@router.post("/public-pool/assign")
async def assign_from_pool(
    body: PoolAssignIn, session: SessionDep, settings: SettingsDep, user: CurrentManager
) -> Envelope[BatchAssignOut]:
    """Assign customers of the public pool to an advisor."""
    assignment = await service.assign_to(
        session,
        settings,
        customer_ids=body.customer_ids,
        assigned_to=body.assigned_to,
        by=user,
        reason=body.reason,
        channel=AssignChannel.pool,
    )
    return _batch_answer("分配完成", assignment)


@router.patch("/{customer_id}/assign")
async def assign_customer(
    customer_id: CustomerId,
    body: AssignIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentManager,
) -> Envelope[AssignedCustomerOut]:
    """Assign one customer to an advisor (console)."""
    assignment = await service.assign_one(
        session,
        settings,
        customer_id=customer_id,
        assigned_to=body.assigned_to,
        by=user,
        reason=body.assignment_reason,
        channel=AssignChannel.console,
    )
    data = AssignedCustomerOut.of(
        _assigned(assignment), notificationData=assignment.notification_data
    )
    return Envelope[AssignedCustomerOut](data=data, message="客户分配成功")


def _assigned(assignment: Assignment) -> Customer:
    """The one customer moved, or its refusal as HTTP (404 not there, 409 otherwise)."""
    if assignment.result.failed:
        raise refusal_error(assignment.result.failed[0])
    return assignment.result.done[0]


def _batch_answer(prefix: str, assignment: Assignment) -> Envelope[BatchAssignOut]:
    result = assignment.result
    data = BatchAssignOut.of(result, notificationData=assignment.notification_data)
    return Envelope[BatchAssignOut](
        data=data, message=f"{prefix}：成功 {len(result.done)} 个，失败 {len(result.failed)} 个"
    )
