"""The admins' staff accounts API, /api/users: list, create, update, suspend, resume, reset
a password, unbind the WeChat; never an openid or a hash in an answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.factories import add_user, new_openid, new_phone, staff_headers
from wxcrm.core.ids import new_id
from wxcrm.users.models import Role, User

ANSWER_FIELDS = {
    "_id",
    "username",
    "name",
    "phone",
    "role",
    "roleLabel",
    "department",
    "status",
    "wechatBound",
    "wechatStatus",
    "createdAt",
    "updatedAt",
}
NEW_PASSWORD = "brand-new-pass"


def account(response: httpx.Response, message: str) -> dict[str, Any]:
    """The account an answer shows, after checking it says nothing secret."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["message"] == message
    data: dict[str, Any] = body["data"]
    assert set(data) == ANSWER_FIELDS
    assert "openid" not in response.text and "argon2" not in response.text
    assert "password" not in response.text.lower()
    return data


async def row(session: AsyncSession, user_id: str) -> User:
    user = await session.scalar(
        select(User).where(User.id == user_id).execution_options(populate_existing=True)
    )
    assert user is not None
    return user


@pytest.fixture
async def admin(session: AsyncSession) -> User:
    return await add_user(session, Role.admin, name="管理员")


@pytest.fixture
def as_admin(admin: User) -> dict[str, str]:
    return staff_headers(admin)


async def test_create_takes_our_role_or_the_wire_code_and_answers_the_account(
    client: httpx.AsyncClient, session: AsyncSession, as_admin: dict[str, str]
) -> None:
    body = {
        "username": "  wang-fang ",
        "password": "s3cret-pass",
        "name": "王芳",
        "role": "employee",
        "phone": "+86 138-0013-8000",
        "department": "销售部",
    }
    created = account(await client.post("/api/users", json=body, headers=as_admin), "创建员工成功")
    assert created["username"] == "wang-fang" and created["phone"] == "13800138000"
    assert (created["role"], created["roleLabel"]) == ("employee", "员工")
    assert (created["status"], created["wechatBound"], created["wechatStatus"]) == (
        "active",
        False,
        "未绑定",
    )
    assert (await row(session, created["_id"])).role == "advisor"

    manager = body | {"username": "li-jingli", "role": "manager", "phone": None}
    assert (
        account(await client.post("/api/users", json=manager, headers=as_admin), "创建员工成功")[
            "role"
        ]
        == "manager"
    )
    advisor = body | {"username": "zhao", "role": "advisor", "phone": None}
    assert (
        account(await client.post("/api/users", json=advisor, headers=as_admin), "创建员工成功")[
            "role"
        ]
        == "employee"
    )
    # The new account logs in with its password.
    login = await client.post(
        "/api/auth/login", json={"username": "wang-fang", "password": "s3cret-pass"}
    )
    assert login.status_code == 200, login.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"password": "short"}, "password"),
        ({"role": "boss"}, "role"),
        ({"name": "  "}, "name"),
        ({"phone": "12345"}, "phone"),
        ({"openid": "o-x"}, "openid"),
        ({"username": "x" * 65}, "username"),
    ],
)
async def test_create_refuses_bad_input_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    as_admin: dict[str, str],
    change: dict[str, str],
    field: str,
) -> None:
    body = {"username": "bad-input", "password": "s3cret-pass", "name": "王芳", "role": "employee"}
    failure = assert_error(
        await client.post("/api/users", json=body | change, headers=as_admin),
        400,
        "VALIDATION_ERROR",
    )
    assert [d["field"] for d in failure["error"]["details"]] == [field]
    assert await session.scalar(select(User).where(User.username.like("bad-input%"))) is None


async def test_create_refuses_a_taken_username_or_phone(
    client: httpx.AsyncClient, session: AsyncSession, as_admin: dict[str, str]
) -> None:
    phone = new_phone()
    holder = await add_user(session, username="taken-name")
    await client.patch(f"/api/users/{holder.id}", json={"phone": phone}, headers=as_admin)
    body = {"username": "taken-name", "password": "s3cret-pass", "name": "王芳", "role": "manager"}
    taken = assert_error(
        await client.post("/api/users", json=body, headers=as_admin), 409, "CONFLICT"
    )
    assert taken["message"] == "用户名 taken-name 已存在"
    body |= {"username": "other-name", "phone": phone}
    taken = assert_error(
        await client.post("/api/users", json=body, headers=as_admin), 409, "CONFLICT"
    )
    assert taken["message"] == f"手机号 {phone} 已被用户 taken-name 使用"


async def test_only_admins_reach_the_api(client: httpx.AsyncClient, session: AsyncSession) -> None:
    target = await add_user(session)
    calls = [
        ("GET", "/api/users", None),
        (
            "POST",
            "/api/users",
            {"username": "x", "password": "12345678", "name": "x", "role": "admin"},
        ),
        ("PATCH", f"/api/users/{target.id}", {"role": "admin"}),
        ("POST", f"/api/users/{target.id}/suspend", None),
        ("POST", f"/api/users/{target.id}/resume", None),
        ("POST", f"/api/users/{target.id}/reset-password", {"password": NEW_PASSWORD}),
        ("POST", f"/api/users/{target.id}/unbind-wechat", None),
    ]
    manager = staff_headers(await add_user(session, Role.manager))
    advisor = staff_headers(await add_user(session, Role.advisor))
    for method, url, body in calls:
        for headers in (manager, advisor):
            response = await client.request(method, url, json=body, headers=headers)
            assert_error(response, 403, "FORBIDDEN")
        assert_error(await client.request(method, url, json=body), 401, "UNAUTHORIZED")
    assert (await row(session, target.id)).role == "advisor"


async def test_list_pages_newest_first_and_filters(
    client: httpx.AsyncClient, session: AsyncSession, as_admin: dict[str, str]
) -> None:
    await add_user(session, username="lst-a", name="张三")
    second = await add_user(session, Role.manager, username="lst-b", openid=new_openid())
    await add_user(session, username="lst-c", active=False)

    async def listed(**params: Any) -> tuple[list[str], dict[str, Any]]:
        response = await client.get("/api/users", params=params, headers=as_admin)
        assert response.status_code == 200, response.text
        assert 'openid"' not in response.text and "password" not in response.text.lower()
        data = response.json()["data"]
        return [item["username"] for item in data["items"]], data

    names, data = await listed(search="lst-")
    assert names == ["lst-c", "lst-b", "lst-a"] and data["total"] == 3
    names, data = await listed(search="lst-", limit=2, page=2)
    assert names == ["lst-a"] and (data["total"], data["totalPages"]) == (3, 2)
    assert (await listed(search="张三"))[0] == ["lst-a"]
    assert (await listed(search="lst-", role="manager"))[0] == ["lst-b"]
    assert (await listed(search="lst-", role="employee"))[0] == ["lst-c", "lst-a"]
    assert (await listed(search="lst-", role="advisor"))[0] == ["lst-c", "lst-a"]
    assert (await listed(search="lst-", status="inactive"))[0] == ["lst-c"]
    assert (await listed(search="lst-", status="active"))[0] == ["lst-b", "lst-a"]
    assert (await listed(search="lst%"))[0] == []  # matched as typed
    _, data = await listed(search="lst-b")
    assert data["items"][0]["wechatBound"] is True
    assert data["items"][0]["wechatStatus"] == "已绑定"
    assert data["items"][0]["_id"] == second.id

    for params in ({"status": "gone"}, {"role": "boss"}, {"limit": 0}):
        response = await client.get("/api/users", params=params, headers=as_admin)
        assert_error(response, 400, "VALIDATION_ERROR")


async def test_update_changes_what_is_given(
    client: httpx.AsyncClient, session: AsyncSession, as_admin: dict[str, str]
) -> None:
    user = await add_user(session, name="王芳")
    url = f"/api/users/{user.id}"
    changed = account(
        await client.patch(
            url,
            json={"phone": "138 0013 8001", "department": "客服部", "role": "manager"},
            headers=as_admin,
        ),
        "更新员工成功",
    )
    assert (changed["phone"], changed["department"], changed["role"], changed["name"]) == (
        "13800138001",
        "客服部",
        "manager",
        "王芳",
    )
    changed = account(
        await client.patch(
            url, json={"name": "王芳芳", "phone": None, "department": ""}, headers=as_admin
        ),
        "更新员工成功",
    )
    assert (changed["name"], changed["phone"], changed["department"]) == ("王芳芳", None, None)
    assert changed["role"] == "manager"


async def test_update_refuses_bad_input_a_taken_phone_and_an_unknown_id(
    client: httpx.AsyncClient, session: AsyncSession, as_admin: dict[str, str]
) -> None:
    phone = new_phone()
    holder = await add_user(session)
    user = await add_user(session, name="王芳")
    await client.patch(f"/api/users/{holder.id}", json={"phone": phone}, headers=as_admin)
    url = f"/api/users/{user.id}"
    taken = assert_error(
        await client.patch(url, json={"phone": phone}, headers=as_admin), 409, "CONFLICT"
    )
    assert taken["message"] == f"手机号 {phone} 已被用户 {holder.username} 使用"
    for body in ({"phone": "12345"}, {"role": "boss"}, {"name": ""}, {"isActive": False}):
        assert_error(await client.patch(url, json=body, headers=as_admin), 400, "VALIDATION_ERROR")
    unknown = await client.patch(f"/api/users/{new_id()}", json={"name": "x"}, headers=as_admin)
    assert assert_error(unknown, 404, "NOT_FOUND")["message"] == "员工不存在"
    assert_error(
        await client.patch("/api/users/not-an-id", json={}, headers=as_admin),
        400,
        "VALIDATION_ERROR",
    )
    stored = await row(session, user.id)
    assert (stored.name, stored.phone, stored.role) == ("王芳", None, "advisor")


async def test_the_last_active_admin_keeps_the_role(
    client: httpx.AsyncClient, session: AsyncSession, admin: User, as_admin: dict[str, str]
) -> None:
    url = f"/api/users/{admin.id}"
    refused = assert_error(
        await client.patch(url, json={"role": "manager"}, headers=as_admin), 409, "CONFLICT"
    )
    assert "最后一名管理员" in refused["message"]
    assert (await row(session, admin.id)).role == "admin"
    # A suspended admin does not count; with another active one the change is allowed.
    await add_user(session, Role.admin, active=False)
    assert_error(
        await client.patch(url, json={"role": "employee"}, headers=as_admin), 409, "CONFLICT"
    )
    other = await add_user(session, Role.admin)
    demoted = account(
        await client.patch(url, json={"role": "employee"}, headers=as_admin), "更新员工成功"
    )
    assert demoted["role"] == "employee"
    # Now the other admin is the last one: the first can no longer act as admin.
    assert_error(await client.get("/api/users", headers=as_admin), 403, "FORBIDDEN")
    as_other = staff_headers(other)
    refused = await client.patch(
        f"/api/users/{other.id}", json={"role": "manager"}, headers=as_other
    )
    assert_error(refused, 409, "CONFLICT")


async def test_suspend_stops_the_accounts_tokens_at_once_and_resume_restores_them(
    client: httpx.AsyncClient, session: AsyncSession, as_admin: dict[str, str]
) -> None:
    user = await add_user(session, Role.manager)
    as_user = staff_headers(user)
    assert (await client.get("/api/auth/me", headers=as_user)).status_code == 200
    suspended = account(
        await client.post(f"/api/users/{user.id}/suspend", headers=as_admin), "员工已停用"
    )
    assert suspended["status"] == "inactive"
    assert_error(await client.get("/api/auth/me", headers=as_user), 401, "UNAUTHORIZED")
    again = await client.post(f"/api/users/{user.id}/suspend", headers=as_admin)
    assert account(again, "员工已停用")["status"] == "inactive"
    resumed = account(
        await client.post(f"/api/users/{user.id}/resume", headers=as_admin), "员工已启用"
    )
    assert resumed["status"] == "active"
    assert (await client.get("/api/auth/me", headers=as_user)).status_code == 200
    for action in ("suspend", "resume"):
        missing = await client.post(f"/api/users/{new_id()}/{action}", headers=as_admin)
        assert_error(missing, 404, "NOT_FOUND")


async def test_an_admin_cannot_suspend_themselves(
    client: httpx.AsyncClient, session: AsyncSession, admin: User, as_admin: dict[str, str]
) -> None:
    await add_user(session, Role.admin)  # not the last admin: still refused
    refused = await client.post(f"/api/users/{admin.id}/suspend", headers=as_admin)
    assert assert_error(refused, 409, "CONFLICT")["message"] == "不能停用自己的账号"
    assert (await row(session, admin.id)).is_active is True
    assert (await client.get("/api/users", headers=as_admin)).status_code == 200


async def test_reset_password_replaces_the_old_one(
    client: httpx.AsyncClient, session: AsyncSession, as_admin: dict[str, str]
) -> None:
    user = await add_user(session)
    before = staff_headers(user)
    assert (await client.get("/api/auth/me", headers=before)).status_code == 200
    url = f"/api/users/{user.id}/reset-password"
    short = await client.post(url, json={"password": "1234567"}, headers=as_admin)
    assert_error(short, 400, "VALIDATION_ERROR")
    account(await client.post(url, json={"password": NEW_PASSWORD}, headers=as_admin), "密码已重置")

    async def login(password: str) -> int:
        response = await client.post(
            "/api/auth/login", json={"username": user.username, "password": password}
        )
        return response.status_code

    assert await login(NEW_PASSWORD) == 200
    assert await login("correct-horse-battery") == 401
    # The sessions from before the reset are over; a login after it works at once.
    assert_error(await client.get("/api/auth/me", headers=before), 401, "UNAUTHORIZED")
    fresh = await client.post(
        "/api/auth/login", json={"username": user.username, "password": NEW_PASSWORD}
    )
    token = fresh.json()["data"]["token"]
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    missing = f"/api/users/{new_id()}/reset-password"
    assert_error(
        await client.post(missing, json={"password": NEW_PASSWORD}, headers=as_admin),
        404,
        "NOT_FOUND",
    )


async def test_unbind_wechat_clears_the_openid(
    client: httpx.AsyncClient, session: AsyncSession, as_admin: dict[str, str]
) -> None:
    openid = new_openid()
    user = await add_user(session, openid=openid)
    response = await client.post(f"/api/users/{user.id}/unbind-wechat", headers=as_admin)
    assert openid not in response.text
    unbound = account(response, "已解除微信绑定")
    assert (unbound["wechatBound"], unbound["wechatStatus"]) == (False, "未绑定")
    assert (await row(session, user.id)).openid is None
    again = await client.post(f"/api/users/{user.id}/unbind-wechat", headers=as_admin)
    assert account(again, "已解除微信绑定")["wechatBound"] is False
