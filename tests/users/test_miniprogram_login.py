"""The staff mini program's login: a wx.login code and the staff member's phone give a token,
the original's user shape and roles. The first login binds its WeChat (one account per
openid); later phone logins must come from that WeChat, and only a password login with a code
(or an admin) moves the account to another."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Configure, assert_error
from tests.factories import DEFAULT_PASSWORD, make_user, new_phone
from wxcrm.core.errors import Conflict, Unauthorized
from wxcrm.users import service
from wxcrm.users.models import Role, User
from wxcrm.users.repository import UserRepository
from wxcrm.wechat.sim import SimControl

URL = "/api/auth/miniprogram-login"
ENVELOPE = {"success", "data", "message", "timestamp"}
LOGIN_USER = {
    "id",
    "username",
    "name",
    "phone",
    "avatar",
    "role",
    "roleLabel",
    "department",
    "permissions",
    "createdAt",
}
ME_USER = LOGIN_USER | {"active", "updatedAt", "_id", "isActive", "openidBound"}
ROLES = [
    (Role.admin, "admin", "系统管理员", ["*"]),
    (Role.manager, "manager", "经理", ["customer:all", "user:view"]),
    (Role.advisor, "employee", "员工", ["customer:view", "customer:create", "customer:edit"]),
]


async def staff(
    session: AsyncSession,
    role: Role = Role.advisor,
    *,
    phone: str | None = None,
    department: str | None = None,
    **fields: Any,
) -> User:
    """A staff member with a phone, committed: a request that fails rolls back only itself."""
    user = await make_user(session, role, **fields)
    user.phone = phone or new_phone()
    user.department = department
    await session.commit()
    return user


async def mp_login(
    client: httpx.AsyncClient, sim_control: SimControl, openid: str, phone: str
) -> httpx.Response:
    code = await sim_control.mint_login_code(openid)
    return await client.post(URL, json={"code": code, "phone": phone})


def logged_in(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == ENVELOPE
    assert body["success"] is True and body["message"] == "小程序登录成功"
    data: dict[str, Any] = body["data"]
    return data


async def code_exchanges(sim_control: SimControl) -> int:
    return int((await sim_control.stats())["calls"]["jscode2session"])


async def bound_to(session: AsyncSession, openid: str) -> list[str]:
    """Ids of the accounts holding `openid`.

    A failed request rolls the test's session back, which expires its objects: tests keep
    the ids they compare with before they send one."""
    return list(await session.scalars(select(User.id).where(User.openid == openid)))


async def test_a_code_and_the_phone_log_an_advisor_in_and_bind_its_openid(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    advisor = await staff(session, name="王芳", phone="13800138000", department="销售部")
    data = logged_in(await mp_login(client, sim_control, "o-mp-advisor", "13800138000"))

    assert set(data) == {"access_token", "user", "openid"}
    assert data["openid"] == "o-mp-advisor"
    user = data["user"]
    assert set(user) == LOGIN_USER  # no e-mail: we keep none
    assert user["id"] == advisor.id and user["username"] == advisor.username
    assert user["name"] == "王芳" and user["phone"] == "13800138000"
    assert user["department"] == "销售部" and user["avatar"] is None
    assert user["role"] == "employee" and user["roleLabel"] == "员工"
    assert user["createdAt"].startswith(str(advisor.created_at.year))
    assert "hash" not in str(data) and "password" not in str(data)
    assert await bound_to(session, "o-mp-advisor") == [advisor.id]

    # The token is a staff token like the password login's.
    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {data['access_token']}"}
    )
    assert me.status_code == 200, me.text
    assert me.json()["data"]["id"] == advisor.id
    assert me.json()["data"]["openidBound"] is True
    assert "o-mp-advisor" not in me.text

    # The same WeChat logs in again, and stays bound.
    again = logged_in(await mp_login(client, sim_control, "o-mp-advisor", "13800138000"))
    assert again["user"]["id"] == advisor.id
    assert await bound_to(session, "o-mp-advisor") == [advisor.id]


async def test_a_phone_login_from_another_wechat_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    """The phone is no secret: knowing it must not move the account, and its notifications,
    to the caller's WeChat."""
    advisor_id = (await staff(session, phone="13800138000", openid="o-mp-owner")).id
    other_id = (await staff(session, openid="o-mp-intruder")).id
    with structlog.testing.capture_logs() as logs:
        for intruder in ("o-mp-intruder", "o-mp-unbound"):
            response = await mp_login(client, sim_control, intruder, "13800138000")
            body = assert_error(response, 401, "UNAUTHORIZED")
            assert body["message"] == "该账号已绑定其他微信，请使用账号密码登录或联系管理员"
            assert "access_token" not in response.text and intruder not in response.text

    assert await bound_to(session, "o-mp-owner") == [advisor_id]
    assert await bound_to(session, "o-mp-intruder") == [other_id]  # not moved either
    assert await bound_to(session, "o-mp-unbound") == []
    refusals = [
        line for line in logs if line["event"] == "staff phone login from another wechat refused"
    ]
    assert [line["user_id"] for line in refusals] == [advisor_id, advisor_id]
    assert "o-mp-intruder" not in str(logs) and "o-mp-owner" not in str(logs)
    # The owner's WeChat still logs in.
    logged_in(await mp_login(client, sim_control, "o-mp-owner", "13800138000"))


async def test_logins_from_another_wechat_count_as_login_failures_of_the_address(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sim_control: SimControl,
    configure_limits: Configure,
) -> None:
    configure_limits(rate_limit_login_failures_per_ip="2/minute")
    await staff(session, phone="13800138000", openid="o-mp-owner")
    for _ in range(2):
        response = await mp_login(client, sim_control, "o-mp-taker", "13800138000")
        assert_error(response, 401, "UNAUTHORIZED")
    refused = await mp_login(client, sim_control, "o-mp-owner", "13800138000")
    assert_error(refused, 429, "RATE_LIMITED")


async def test_a_password_login_with_a_code_moves_the_account_to_a_new_wechat(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    """The password proves the account and the code the WeChat: the way to a new phone."""
    advisor = await staff(session, phone="13800138000", openid="o-mp-old-phone")
    with structlog.testing.capture_logs() as logs:
        response = await client.post(
            "/api/auth/login",
            json={
                "username": advisor.username,
                "password": DEFAULT_PASSWORD,
                "code": await sim_control.mint_login_code("o-mp-new-phone"),
            },
        )
    assert response.status_code == 200, response.text
    assert "o-mp-new-phone" not in response.text
    assert await bound_to(session, "o-mp-new-phone") == [advisor.id]
    assert await bound_to(session, "o-mp-old-phone") == []
    rebinds = [line for line in logs if line["event"] == "staff account rebound to another wechat"]
    assert [line["user_id"] for line in rebinds] == [advisor.id]
    assert "o-mp-old-phone" not in str(logs) and "o-mp-new-phone" not in str(logs)

    # Phone logins now come from the new WeChat only.
    logged_in(await mp_login(client, sim_control, "o-mp-new-phone", "13800138000"))
    old = await mp_login(client, sim_control, "o-mp-old-phone", "13800138000")
    assert_error(old, 401, "UNAUTHORIZED")


async def test_after_an_admin_unbinds_the_wechat_the_next_phone_login_binds_its_own(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    advisor = await staff(session, phone="13800138000", openid="o-mp-lost-phone")
    advisor_id = advisor.id
    assert await service.unbind_openid(session, advisor) is True
    assert await service.unbind_openid(session, advisor) is False  # nothing left to clear
    await session.commit()

    logged_in(await mp_login(client, sim_control, "o-mp-replacement", "13800138000"))
    assert await bound_to(session, "o-mp-replacement") == [advisor_id]
    assert await bound_to(session, "o-mp-lost-phone") == []
    later = await mp_login(client, sim_control, "o-mp-lost-phone", "13800138000")
    assert_error(later, 401, "UNAUTHORIZED")


async def test_of_two_first_logins_at_the_same_moment_the_later_is_refused(
    session: AsyncSession,
) -> None:
    advisor = await staff(session, phone="13800138000")
    advisor_id = advisor.id
    # The other login's bind, committed after this one read the account as unbound.
    await session.execute(
        update(User)
        .where(User.id == advisor.id)
        .values(openid="o-mp-first")
        .execution_options(synchronize_session=False)
    )
    assert advisor.openid is None
    with pytest.raises(Unauthorized) as refused:
        await service.miniprogram_login(session, "13800138000", "o-mp-second")
    assert refused.value.message == "该账号已绑定其他微信，请使用账号密码登录或联系管理员"
    assert await bound_to(session, "o-mp-first") == [advisor_id]
    assert await bound_to(session, "o-mp-second") == []


@pytest.mark.parametrize(
    "typed", ["+86 138-0013-8000", "138 0013 8000", "8613800138000", "(138)00138000"]
)
async def test_the_phone_is_normalised_before_the_lookup(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl, typed: str
) -> None:
    advisor = await staff(session, phone="13800138000")
    data = logged_in(await mp_login(client, sim_control, "o-mp-typed", typed))
    assert data["user"]["id"] == advisor.id and data["user"]["phone"] == "13800138000"


@pytest.mark.parametrize(("role", "code", "label", "permissions"), ROLES, ids=[r[1] for r in ROLES])
async def test_roles_are_the_original_codes_with_their_labels_and_permissions(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sim_control: SimControl,
    role: Role,
    code: str,
    label: str,
    permissions: list[str],
) -> None:
    user = await staff(session, role)
    assert user.phone is not None
    data = logged_in(await mp_login(client, sim_control, f"o-mp-{code}", user.phone))
    expected = {"role": code, "roleLabel": label, "permissions": permissions}
    assert {key: data["user"][key] for key in expected} == expected

    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {data['access_token']}"}
    )
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["message"] == "获取用户信息成功"
    assert set(body["data"]) == ME_USER
    assert {key: body["data"][key] for key in expected} == expected
    assert body["data"]["active"] is True and body["data"]["updatedAt"]

    password = await client.post(
        "/api/auth/login", json={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert password.status_code == 200, password.text
    answer = password.json()["data"]
    assert answer["access_token"] == answer["token"]
    assert {key: answer["user"][key] for key in expected} == expected


async def test_an_unknown_phone_is_refused_and_binds_nothing(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    await staff(session, phone="13800138000")
    response = await mp_login(client, sim_control, "o-mp-stranger", "13800138001")
    body = assert_error(response, 401, "UNAUTHORIZED")
    assert body["message"] == "手机号未注册，请联系管理员"
    assert await bound_to(session, "o-mp-stranger") == []


async def test_unknown_phones_count_as_login_failures_of_the_address(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sim_control: SimControl,
    configure_limits: Configure,
) -> None:
    configure_limits(rate_limit_login_failures_per_ip="2/minute")
    await staff(session, phone="13800138000")
    for guess in ("13800138001", "13800138002"):
        response = await mp_login(client, sim_control, "o-mp-guesser", guess)
        assert_error(response, 401, "UNAUTHORIZED")
    exchanged = await code_exchanges(sim_control)
    # Full: even the right phone waits, and WeChat is not asked (the code stays good).
    refused = await mp_login(client, sim_control, "o-mp-guesser", "13800138000")
    assert_error(refused, 429, "RATE_LIMITED")
    assert await code_exchanges(sim_control) == exchanged
    assert await bound_to(session, "o-mp-guesser") == []


async def test_a_disabled_account_is_refused_and_nothing_is_bound_or_moved(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    disabled = await staff(session, phone="13800138000", active=False)
    holder_id = (await staff(session, openid="o-mp-shared")).id
    response = await mp_login(client, sim_control, "o-mp-shared", "13800138000")
    body = assert_error(response, 401, "UNAUTHORIZED")
    assert body["message"] == "账号已被禁用"
    assert await bound_to(session, "o-mp-shared") == [holder_id]
    await session.refresh(disabled)
    assert disabled.openid is None


async def test_an_openid_moves_from_the_account_that_held_it_and_the_move_is_logged(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    """The code proves the WeChat is the caller's own: its first phone login with an account
    takes it from the account it was bound to (a handed-over work phone)."""
    holder = await staff(session, openid="o-mp-handed-over")
    taker = await staff(session, phone="13800138000")
    with structlog.testing.capture_logs() as logs:
        data = logged_in(await mp_login(client, sim_control, "o-mp-handed-over", "13800138000"))
    assert data["user"]["id"] == taker.id
    assert await bound_to(session, "o-mp-handed-over") == [taker.id]

    moves = [line for line in logs if line["event"] == "staff openid moved to another account"]
    assert len(moves) == 1
    assert moves[0]["log_level"] == "warning"
    assert moves[0]["from_user_id"] == holder.id and moves[0]["to_user_id"] == taker.id
    assert "o-mp-handed-over" not in str(logs)


async def test_the_password_logins_code_moves_the_openid_too(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    holder = await staff(session, openid="o-mp-desk")
    taker = await staff(session)
    with structlog.testing.capture_logs() as logs:
        response = await client.post(
            "/api/auth/login",
            json={
                "username": taker.username,
                "password": DEFAULT_PASSWORD,
                "code": await sim_control.mint_login_code("o-mp-desk"),
            },
        )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["user"]["openidBound"] is True
    assert "o-mp-desk" not in response.text
    assert await bound_to(session, "o-mp-desk") == [taker.id]
    moves = [line for line in logs if line["event"] == "staff openid moved to another account"]
    assert [(m["from_user_id"], m["to_user_id"]) for m in moves] == [(holder.id, taker.id)]


async def test_an_openid_a_concurrent_login_bound_first_is_a_409_not_a_500(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder_id = (await staff(session, openid="o-mp-race")).id
    taker = await staff(session)

    async def not_yet_committed(self: UserRepository, openid: str) -> None:
        return None  # the other login's transaction had not committed when this one looked

    monkeypatch.setattr(UserRepository, "by_openid", not_yet_committed)
    with pytest.raises(Conflict) as refused:
        await service.bind_openid(session, taker, "o-mp-race")
    assert refused.value.message == "该微信正在登录另一个账号，请稍后重试"
    assert await bound_to(session, "o-mp-race") == [holder_id]


async def test_bad_expired_and_used_codes_are_the_clients_400(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    advisor_id = (await staff(session, phone="13800138000")).id
    never = await client.post(URL, json={"code": "never-minted", "phone": "13800138000"})
    body = assert_error(never, 400, "BAD_REQUEST")
    assert body["message"] == "登录凭证 code 无效或已过期，请重新调用 wx.login"
    assert body["error"]["details"] == {"errcode": 40029}

    expired = await sim_control.mint_login_code("o-mp-late")
    await sim_control.advance_clock(301)
    response = await client.post(URL, json={"code": expired, "phone": "13800138000"})
    assert assert_error(response, 400, "BAD_REQUEST")["error"]["details"] == {"errcode": 40029}

    used = await sim_control.mint_login_code("o-mp-once")
    logged_in(await client.post(URL, json={"code": used, "phone": "13800138000"}))
    again = await client.post(URL, json={"code": used, "phone": "13800138000"})
    assert assert_error(again, 400, "BAD_REQUEST")["error"]["details"] == {"errcode": 40163}
    assert await bound_to(session, "o-mp-once") == [advisor_id]
    assert await bound_to(session, "o-mp-late") == []


async def test_bad_codes_count_against_the_address(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sim_control: SimControl,
    configure_limits: Configure,
) -> None:
    configure_limits(rate_limit_code_failures_per_ip="2/minute")
    await staff(session, phone="13800138000")
    for n in range(2):
        response = await client.post(URL, json={"code": f"bad-{n}", "phone": "13800138000"})
        assert_error(response, 400, "BAD_REQUEST")
    exchanged = await code_exchanges(sim_control)
    refused = await mp_login(client, sim_control, "o-mp-after-bad-codes", "13800138000")
    assert_error(refused, 429, "RATE_LIMITED")
    assert await code_exchanges(sim_control) == exchanged


async def test_wechat_refusing_the_app_is_a_502_not_a_500(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    await staff(session, phone="13800138000")
    await sim_control.fault("jscode2session", errcode=40125)  # a wrong app secret
    response = await mp_login(client, sim_control, "o-mp-misconfigured", "13800138000")
    body = assert_error(response, 502, "WECHAT_ERROR")
    assert body["message"] == "微信接口调用失败"
    assert await bound_to(session, "o-mp-misconfigured") == []


MISSING = object()


@pytest.mark.parametrize(
    ("phone", "message"),
    [
        (MISSING, "该字段为必填项"),
        (None, "必须是字符串"),
        (13800138000, "必须是字符串"),
        ("", "长度不能少于1个字符"),
        ("12345", "手机号格式不正确（需为中国大陆11位手机号）"),
        ("23800138000", "手机号格式不正确（需为中国大陆11位手机号）"),
        ("138001380000", "手机号格式不正确（需为中国大陆11位手机号）"),
        ("+1 415 555 0100", "手机号格式不正确（需为中国大陆11位手机号）"),
        ("1" * 33, "长度不能超过32个字符"),
    ],
    ids=["missing", "null", "number", "empty", "short", "not-mobile", "long", "foreign", "huge"],
)
async def test_a_missing_or_bad_phone_is_a_400_before_wechat_is_asked(
    client: httpx.AsyncClient, sim_control: SimControl, phone: object, message: str
) -> None:
    code = await sim_control.mint_login_code("o-mp-bad-phone")
    body: dict[str, object] = {"code": code}
    if phone is not MISSING:
        body["phone"] = phone
    answer = assert_error(await client.post(URL, json=body), 400, "VALIDATION_ERROR")
    assert answer["error"]["details"] == [{"field": "phone", "message": message}]
    assert await code_exchanges(sim_control) == 0  # the code is still good


@pytest.mark.parametrize("code", [None, "", "c" * 129])
async def test_a_missing_or_bad_code_is_a_400(
    client: httpx.AsyncClient, sim_control: SimControl, code: str | None
) -> None:
    response = await client.post(URL, json={"code": code, "phone": "13800138000"})
    answer = assert_error(response, 400, "VALIDATION_ERROR")
    assert [problem["field"] for problem in answer["error"]["details"]] == ["code"]


async def test_no_answer_shows_a_bound_openid(
    client: httpx.AsyncClient, session: AsyncSession, sim_control: SimControl
) -> None:
    advisor = await staff(session, openid="o-mp-secret")
    login = await client.post(
        "/api/auth/login", json={"username": advisor.username, "password": DEFAULT_PASSWORD}
    )
    assert login.status_code == 200, login.text
    token = login.json()["data"]["token"]
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["data"]["openidBound"] is True
    assert "o-mp-secret" not in login.text + me.text
