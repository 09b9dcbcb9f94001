"""Staff accounts have a phone (normalised, one account each) and a department, set by
`wxcrm users create` and changed by `wxcrm users update`."""

from __future__ import annotations

import os

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import TEST_SECRET_KEY
from tests.factories import make_user
from tests.live import run_cli
from wxcrm.core.db import Database
from wxcrm.core.errors import Conflict, NotFound, ValidationFailed
from wxcrm.users import service
from wxcrm.users.models import Role, User
from wxcrm.users.repository import UserRepository
from wxcrm.wechat.sim import SimControl

PASSWORD = "s3cret-pass"
PHONE_FORMAT = "手机号格式不正确（需为中国大陆11位手机号）"


async def create(session: AsyncSession, username: str, **fields: str) -> User:
    return await service.create_user(
        session, username=username, password=PASSWORD, role=Role.advisor, **fields
    )


async def test_create_normalises_the_phone_and_keeps_the_department(session: AsyncSession) -> None:
    user = await create(session, "svc-a", phone="+86 138-0013-8000", department=" 销售部 ")
    assert user.phone == "13800138000" and user.department == "销售部"
    bare = await create(session, "svc-b")
    assert bare.phone is None and bare.department is None


async def test_a_phone_belongs_to_one_account(session: AsyncSession) -> None:
    await create(session, "svc-a", phone="13800138000")
    with pytest.raises(Conflict) as taken:
        await create(session, "svc-b", phone="138 0013 8000")
    assert taken.value.message == "手机号 13800138000 已被用户 svc-a 使用"
    assert await session.scalar(select(User).where(User.username == "svc-b")) is None


@pytest.mark.parametrize("phone", ["12345", "23800138000", "1380013800x", "+1 415 555 0100"])
async def test_a_phone_that_is_not_a_mainland_mobile_is_refused(
    session: AsyncSession, phone: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await create(session, "svc-a", phone=phone)
    assert refused.value.details == [{"field": "phone", "message": PHONE_FORMAT}]


async def test_update_changes_what_is_given_and_nothing_else(session: AsyncSession) -> None:
    user = await make_user(session, Role.advisor, name="王芳")
    user.phone, user.department = "13800138000", "销售部"
    await session.flush()

    changed = await service.update_user(session, user.username, phone="+86 138 0013 8001")
    assert (changed.phone, changed.department, changed.name) == ("13800138001", "销售部", "王芳")
    await service.update_user(session, user.username, phone="13800138001")  # its own: fine
    changed = await service.update_user(
        session, user.username, department="客服部", name="王芳芳", role=Role.manager
    )
    assert (changed.department, changed.name, changed.role) == ("客服部", "王芳芳", "manager")
    assert changed.phone == "13800138001"
    cleared = await service.update_user(session, user.username, phone="", department="")
    assert cleared.phone is None and cleared.department is None


async def test_update_refuses_an_unknown_user_a_bad_phone_and_another_accounts_phone(
    session: AsyncSession,
) -> None:
    owner = await make_user(session)
    owner.phone = "13800138000"
    user = await make_user(session)
    await session.flush()
    with pytest.raises(NotFound) as unknown:
        await service.update_user(session, "nobody-here", name="x")
    assert unknown.value.message == "用户 nobody-here 不存在"
    with pytest.raises(ValidationFailed):
        await service.update_user(session, user.username, phone="12345")
    with pytest.raises(Conflict) as taken:
        await service.update_user(session, user.username, phone="+8613800138000")
    assert taken.value.message == f"手机号 13800138000 已被用户 {owner.username} 使用"
    with pytest.raises(ValidationFailed) as long_name:
        await service.update_user(session, user.username, name="名" * 65)
    assert long_name.value.details == [{"field": "name", "message": "姓名不能超过64个字符"}]


@pytest.fixture
def phone_check_misses_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first phone lookup misses an account another transaction had not yet committed:
    the check and the write are apart, and a concurrent request can take the phone between
    them. The unique index then refuses the write."""
    by_phone = UserRepository.by_phone
    looks = 0

    async def misses_the_first_time(self: UserRepository, phone: str) -> User | None:
        nonlocal looks
        looks += 1
        return None if looks == 1 else await by_phone(self, phone)

    monkeypatch.setattr(UserRepository, "by_phone", misses_the_first_time)


@pytest.mark.usefixtures("phone_check_misses_once")
async def test_a_phone_another_account_takes_at_the_same_moment_is_the_same_409(
    session: AsyncSession,
) -> None:
    owner = await make_user(session)
    owner.phone = "13800138000"
    user = await make_user(session, name="王芳")
    user_id, owner_name = user.id, owner.username
    await session.flush()
    with pytest.raises(Conflict) as taken:
        await service.update_user(session, user.username, phone="13800138000", name="王芳芳")
    assert taken.value.message == f"手机号 13800138000 已被用户 {owner_name} 使用"
    row = (await session.execute(select(User.name, User.phone).where(User.id == user_id))).one()
    assert tuple(row) == ("王芳", None)  # nothing of the update was written


@pytest.mark.usefixtures("phone_check_misses_once")
async def test_a_phone_a_concurrent_create_took_is_the_same_409(session: AsyncSession) -> None:
    holder = await make_user(session)
    holder.phone = "13800138000"
    await session.flush()
    holder_name = holder.username
    with pytest.raises(Conflict) as taken:
        await create(session, "svc-b", phone="13800138000")
    assert taken.value.message == f"手机号 13800138000 已被用户 {holder_name} 使用"
    assert await session.scalar(select(User).where(User.username == "svc-b")) is None


async def test_staff_made_and_changed_by_the_cli_log_in_by_phone(
    live_client: httpx.AsyncClient, sim_control: SimControl, committed: Database, database_url: str
) -> None:
    """Over committed rows (`committed` empties the database afterwards): the CLI writes
    in processes of its own."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "LOG_LEVEL": "WARNING",  # stderr is then the command's own words
    }

    async def cli(*args: str) -> tuple[int, str, str]:
        code, out, err = await run_cli("users", *args, env=env)
        assert "Traceback" not in out + err
        return code, out, err

    def new(username: str, phone: str) -> tuple[str, ...]:
        return ("create", "--username", username, "--password", PASSWORD, "--role", "advisor",
                "--phone", phone)  # fmt: skip

    code, out, err = await cli(*new("cli-staff-a", "+86 138-0013-8900"), "--department", "销售部")
    assert code == 0, err
    assert "created advisor cli-staff-a" in out
    assert "phone 13800138900, department 销售部" in out

    code, _, err = await cli(*new("cli-staff-b", "13800138900"))
    assert code == 1 and err.strip() == "error: 手机号 13800138900 已被用户 cli-staff-a 使用"
    code, _, err = await cli(*new("cli-staff-b", "13800138901"))
    assert code == 0, err

    code, _, err = await cli("update", "cli-staff-a", "--phone", "138 0013 8901")
    assert code == 1 and err.strip() == "error: 手机号 13800138901 已被用户 cli-staff-b 使用"
    code, _, err = await cli("update", "cli-staff-a", "--phone", "12345")
    assert code == 1 and err.strip() == f"error: {PHONE_FORMAT}"
    code, _, err = await cli("update", "nobody-here", "--name", "谁")
    assert code == 1 and err.strip() == "error: 用户 nobody-here 不存在"

    code, out, err = await cli(
        "update", "cli-staff-a", "--phone", "138 0013 8902", "--department", "客服部",
        "--name", "王经理", "--role", "manager",
    )  # fmt: skip
    assert code == 0, err
    assert "updated manager cli-staff-a: name 王经理, phone 13800138902, department 客服部" in out

    login_code = await sim_control.mint_login_code("o-cli-staff-a")
    response = await live_client.post(
        "/api/auth/miniprogram-login", json={"code": login_code, "phone": "13800138902"}
    )
    assert response.status_code == 200, response.text
    user = response.json()["data"]["user"]
    assert (user["username"], user["name"]) == ("cli-staff-a", "王经理")
    assert (user["role"], user["department"]) == ("manager", "客服部")

    # Bound now: another WeChat with the phone is refused, until an admin clears the binding.
    async def phone_login(openid: str) -> httpx.Response:
        login_code = await sim_control.mint_login_code(openid)
        return await live_client.post(
            "/api/auth/miniprogram-login", json={"code": login_code, "phone": "13800138902"}
        )

    assert (await phone_login("o-cli-staff-a-new")).status_code == 401
    code, out, err = await cli("update", "cli-staff-a", "--unbind-wechat")
    assert code == 0, err
    assert "unbound its WeChat: the next mini-program phone login binds the one it uses" in out
    code, out, err = await cli("update", "cli-staff-a", "--unbind-wechat")
    assert code == 0 and "no WeChat was bound to it" in out
    code, _, err = await cli("update", "nobody-here", "--unbind-wechat")
    assert code == 1 and err.strip() == "error: 用户 nobody-here 不存在"

    relogin = await phone_login("o-cli-staff-a-new")
    assert relogin.status_code == 200, relogin.text
    assert relogin.json()["data"]["user"]["username"] == "cli-staff-a"
    assert (await phone_login("o-cli-staff-a")).status_code == 401
