"""Customers CRUD, list and assignment through the API: the paths a console user takes."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.factories import make_user, token_for
from wxcrm.users.models import Role


async def test_a_manager_creates_lists_updates_and_assigns_and_an_admin_deletes(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    manager = await make_user(session, Role.manager, name="王经理")
    advisor = await make_user(session, Role.advisor)
    headers = await token_for(client, manager)
    created = await client.post(
        "/api/customers",
        json={
            "name": "张三",
            "phone": "138-0013-8000",
            "leadSource": "美团",
            "serviceCategory": "月嫂",
        },
        headers=headers,
    )
    assert created.status_code == 200, created.text
    customer = created.json()["data"]
    assert customer["phone"] == "13800138000" and customer["inPublicPool"] is True
    listed = await client.get("/api/customers", params={"search": "张"}, headers=headers)
    assert listed.json()["data"]["total"] == 1
    updated = await client.patch(
        f"/api/customers/{customer['_id']}", json={"leadLevel": "A类"}, headers=headers
    )
    assert updated.json()["data"]["leadLevel"] == "A类"
    assigned = await client.patch(
        f"/api/customers/{customer['_id']}/assign",
        json={"assignedTo": advisor.id, "assignmentReason": "客户指定"},
        headers=headers,
    )
    assert assigned.status_code == 200, assigned.text
    body = assigned.json()
    assert body["message"] == "客户分配成功"
    assert body["data"]["assignedTo"] == advisor.id
    assert body["data"]["notificationData"]["source"] == "客户指定"
    assert body["data"]["notificationData"]["assignerName"] == "王经理"
    detail = await client.get(f"/api/customers/{customer['_id']}", headers=headers)
    assert [e["type"] for e in detail.json()["data"]["timeline"]] == ["assignment"]
    refused = await client.delete(f"/api/customers/{customer['_id']}", headers=headers)
    assert_error(refused, 403, "FORBIDDEN")
    admin = await token_for(client, await make_user(session, Role.admin))
    deleted = await client.delete(f"/api/customers/{customer['_id']}", headers=admin)
    assert deleted.status_code == 200
    assert_error(
        await client.get(f"/api/customers/{customer['_id']}", headers=headers), 404, "NOT_FOUND"
    )
