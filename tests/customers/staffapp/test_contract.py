"""What every staff mini-program customer endpoint shares: a bearer staff token (else 401),
a malformed id is a 400, an unknown one a refusal saying 客户不存在 in the endpoint's own
words, the paths are not taken for the console's `/api/customers/{id}`, OpenAPI describes
the refusal, and no answer carries a password hash or an openid."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.customers.conftest import Team, count, make_team
from tests.customers.staffapp.conftest import BASE, assert_no_secrets, ok, refused
from tests.factories import add_customer, mp_headers
from wxcrm.core.ids import new_id
from wxcrm.customers.models import AssignmentHistory, Customer, FollowUp
from wxcrm.notifications.models import Notification

# name: (method, path, body). {id} is a customer of team.advisor; {to} is team.other.
ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "statistics": ("GET", f"{BASE}/statistics", None),
    "today": ("GET", f"{BASE}/today-todo-stats", None),
    "list": ("GET", f"{BASE}/list", None),
    "create": (
        "POST",
        f"{BASE}/create",
        {
            "name": "新客户",
            "phone": "13611112222",
            "leadSource": "美团",
            "contractStatus": "匹配中",
            "leadLevel": "A类",
        },
    ),
    "employees": ("GET", f"{BASE}/employees/list", None),
    "detail": ("GET", f"{BASE}/{{id}}", None),
    "update": ("PATCH", f"{BASE}/{{id}}", {"remarks": "已沟通"}),
    "assign": ("PATCH", f"{BASE}/{{id}}/assign", {"assignedTo": "{to}"}),
    "add follow-up": ("POST", f"{BASE}/{{id}}/follow-ups", {"type": "phone", "content": "沟通"}),
    "follow-ups": ("GET", f"{BASE}/{{id}}/follow-ups", None),
    "assignment logs": ("GET", f"{BASE}/{{id}}/assignment-logs", None),
    "release": ("POST", f"{BASE}/{{id}}/release-to-pool", {"reason": "客户不需要了"}),
    "follow-up status": ("GET", "/api/customers/{id}/follow-up-status", None),
}
ON_ONE = [name for name, (_, path, _) in ENDPOINTS.items() if "{id}" in path]
# An unknown customer, as each endpoint words it: (message, error).
UNKNOWN = {
    "detail": ("客户详情获取失败", "客户不存在"),
    "update": ("客户信息更新失败", "客户不存在"),
    "assign": ("客户不存在", "客户不存在"),
    "add follow-up": ("跟进记录创建失败", "客户不存在"),
    "follow-ups": ("跟进记录获取失败", "客户不存在"),
    "assignment logs": ("分配历史获取失败", "客户不存在"),
    "release": ("客户不存在", "客户不存在"),
    "follow-up status": ("跟进状态获取失败", "客户不存在"),
}
POSTS = {"create", "add follow-up", "release"}


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in values.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    return value


async def call(
    client: httpx.AsyncClient, name: str, headers: dict[str, str] | None, **values: str
) -> httpx.Response:
    method, path, body = ENDPOINTS[name]
    return await client.request(
        method, _fill(path, values), json=_fill(body, values), headers=headers
    )


@pytest.mark.parametrize("name", ENDPOINTS)
async def test_every_endpoint_needs_a_staff_token(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, name: str
) -> None:
    customer = await add_customer(session, team.advisor)
    for headers in (None, mp_headers("o-a-customer"), {"Authorization": "Bearer nonsense"}):
        response = await call(client, name, headers, id=customer.id, to=team.other.id)
        assert_error(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("name", ON_ONE)
@pytest.mark.parametrize("bad_id", ["not-an-id", "0123456789ABCDEF01234567", "0123456789abcdef"])
async def test_a_malformed_id_is_a_400(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, name: str, bad_id: str
) -> None:
    response = await call(client, name, team.headers("admin"), id=bad_id, to=team.other.id)
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["error"]["details"][0]["field"] == "customer_id"
    assert await count(session, Customer) == 0


@pytest.mark.parametrize("name", ON_ONE)
async def test_an_unknown_id_is_refused_as_the_original_words_it(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, name: str
) -> None:
    response = await call(client, name, team.headers("manager"), id=new_id(), to=team.other.id)
    message, error = UNKNOWN[name]
    refused(response, message, error, status=201 if name in POSTS else 200)
    for model in (Customer, FollowUp, AssignmentHistory, Notification):
        assert await count(session, model) == 0


@pytest.mark.parametrize("path", ["list", "statistics", "today-todo-stats", "employees/list"])
async def test_the_fixed_paths_are_not_taken_for_customer_ids(
    client: httpx.AsyncClient, team: Team, path: str
) -> None:
    response = await client.get(f"{BASE}/{path}", headers=team.headers("admin"))
    assert response.status_code == 200 and response.json()["success"] is True, response.text


async def test_the_console_keeps_its_own_paths(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    customer = await add_customer(session, team.advisor, name="控制台")
    detail = await client.get(f"/api/customers/{customer.id}", headers=team.headers("advisor"))
    assert detail.json()["data"]["timeline"] == []  # the console's detail, not ours


async def test_openapi_declares_the_refusal(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    for path, method, status in [
        (f"{BASE}/list", "get", "200"),
        (f"{BASE}/create", "post", "201"),
        (f"{BASE}/{{customer_id}}", "patch", "200"),
        (f"{BASE}/{{customer_id}}/release-to-pool", "post", "201"),
        ("/api/customers/{customer_id}/follow-up-status", "get", "200"),
    ]:
        response = document["paths"][path][method]["responses"][status]
        ref = response["content"]["application/json"]["schema"]["$ref"]
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        assert {"success", "message", "data", "error", "timestamp"} == set(schema["properties"])
        assert set(schema["required"]) == {"success", "message", "data", "timestamp"}


async def test_no_answer_carries_a_password_hash_or_an_openid(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    team = await make_team(session, advisor_openids=True)
    staff = [team.admin, team.manager, team.advisor, team.other]
    lead = await add_customer(
        session, team.advisor, openid="o-the-lead-who-left-a-number", created_by_id=team.admin.id
    )
    await add_customer(session, team.other, openid="o-another-lead")
    by_owner = await call(client, "add follow-up", team.headers("advisor"), id=lead.id)
    assert by_owner.status_code == 201, by_owner.text
    for role in ("admin", "manager", "advisor"):
        headers = team.headers(role)
        follow_up = await call(client, "add follow-up", headers, id=lead.id)
        assert follow_up.status_code == 201, follow_up.text
        for name in ENDPOINTS:
            if name in {"assign", "release", "add follow-up"}:
                continue
            response = await call(client, name, headers, id=lead.id, to=team.other.id)
            assert response.status_code in (200, 201), response.text
            assert_no_secrets(response, staff, [lead])
        # The original's list filtered by follow-up status sent whole user documents.
        filtered = await client.get(
            f"{BASE}/list", params={"followUpStatus": "已跟进"}, headers=headers
        )
        assert ok(filtered, "客户列表获取成功")["customers"][0]["_id"] == lead.id
        assert_no_secrets(filtered, staff, [lead])
    assigned = await call(client, "assign", team.headers("admin"), id=lead.id, to=team.other.id)
    ok(assigned, "客户分配成功")
    assert_no_secrets(assigned, staff, [lead])
    released = await call(client, "release", team.headers("manager"), id=lead.id)
    ok(released, "客户已释放到公海", status=201)
    assert_no_secrets(released, staff, [lead])
    logs = await call(client, "assignment logs", team.headers("admin"), id=lead.id)
    assert len(ok(logs, "分配历史获取成功")) == 2
    assert_no_secrets(logs, staff, [lead])
