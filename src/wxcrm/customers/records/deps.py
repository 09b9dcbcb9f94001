"""Query parameters several customer endpoints share: the list's filters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from wxcrm.core.ids import OBJECT_ID_PATTERN
from wxcrm.core.types import BoundedDate
from wxcrm.customers.records.filters import CustomerFilters, FollowUpStatus, LeadStatus


def list_filters(
    search: Annotated[
        str | None, Query(max_length=64, description="姓名、手机号或客户编号")
    ] = None,
    contract_status: Annotated[str | None, Query(alias="contractStatus", max_length=16)] = None,
    lead_source: Annotated[str | None, Query(alias="leadSource", max_length=32)] = None,
    service_category: Annotated[str | None, Query(alias="serviceCategory", max_length=32)] = None,
    lead_level: Annotated[str | None, Query(alias="leadLevel", max_length=8)] = None,
    assigned_to: Annotated[
        str | None, Query(alias="assignedTo", pattern=OBJECT_ID_PATTERN.pattern)
    ] = None,
    in_pool: Annotated[bool | None, Query(alias="inPublicPool")] = None,
    created_from: Annotated[BoundedDate | None, Query(alias="createdFrom")] = None,
    created_to: Annotated[BoundedDate | None, Query(alias="createdTo")] = None,
    lead_status: Annotated[
        LeadStatus | None, Query(alias="leadStatus", description="已流转：曾被系统收回过")
    ] = None,
    follow_up_status: Annotated[FollowUpStatus | None, Query(alias="followUpStatus")] = None,
) -> CustomerFilters:
    """The customer list's filters, under the same query parameters."""
    return CustomerFilters(
        search=search,
        contract_status=contract_status,
        lead_source=lead_source,
        service_category=service_category,
        lead_level=lead_level,
        owner_id=assigned_to,
        in_pool=in_pool,
        created_from=created_from,
        created_to=created_to,
        lead_status=lead_status,
        follow_up_status=follow_up_status,
    )


FiltersDep = Annotated[CustomerFilters, Depends(list_filters)]
