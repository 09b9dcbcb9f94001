"""The rules of staff accounts: creating them, logging in, issuing tokens."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.errors import Conflict, NotFound, Unauthorized
from wxcrm.core.security import (
    DUMMY_PASSWORD_HASH,
    create_token,
    hash_password_off_loop,
    password_needs_rehash,
    verify_password_off_loop,
)
from wxcrm.core.settings import Settings
from wxcrm.users.models import Role, User
from wxcrm.users.repository import UserRepository

WRONG_CREDENTIALS = "用户名或密码错误"


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: Role,
    name: str | None = None,
    phone: str | None = None,
) -> User:
    users = UserRepository(session)
    if await users.by_username(username) is not None:
        raise Conflict(f"用户名 {username} 已存在")
    return await users.add(
        User(
            username=username,
            password_hash=await hash_password_off_loop(password),
            role=role.value,
            name=name or username,
            phone=phone,
        )
    )


class WrongCredentials(Unauthorized):
    """A wrong username or password: the failure that login rate limits count."""

    def __init__(self) -> None:
        super().__init__(WRONG_CREDENTIALS)


async def authenticate(session: AsyncSession, username: str, password: str) -> User:
    """The active user with this username and password. Reads only: call it in a short
    session, so no transaction is open while the password is checked."""
    user = await UserRepository(session).by_username(username)
    if user is None:
        await verify_password_off_loop(DUMMY_PASSWORD_HASH, password)  # a real miss's cost
        raise WrongCredentials()
    if not await verify_password_off_loop(user.password_hash, password):
        raise WrongCredentials()
    if not user.is_active:
        raise Unauthorized("账号已停用")
    return user


async def upgrade_password_hash(session: AsyncSession, user: User, password: str) -> None:
    """Rehash a password stored with older argon2 parameters, now that we know it."""
    if password_needs_rehash(user.password_hash):
        session.add(user)
        user.password_hash = await hash_password_off_loop(password)
        await session.flush()


async def set_active(session: AsyncSession, username: str, *, active: bool) -> User:
    """Disable or re-enable an account; a disabled account's tokens stop working at once
    (every request reads the account)."""
    user = await UserRepository(session).by_username(username)
    if user is None:
        raise NotFound(f"用户 {username} 不存在")
    user.is_active = active
    await session.flush()
    return user


def issue_staff_token(settings: Settings, user: User) -> tuple[str, int]:
    lifetime = timedelta(minutes=settings.staff_token_minutes)
    token = create_token(
        settings.signing_key(), user.id, "staff", lifetime, claims={"role": user.role}
    )
    return token, int(lifetime.total_seconds())


async def bind_openid(session: AsyncSession, user: User, openid: str) -> None:
    """Bind the mini-program openid an advisor logged in with to its account."""
    session.add(user)  # read in a short session of its own
    holder = await UserRepository(session).by_openid(openid)
    if holder is not None and holder.id != user.id:
        raise Conflict("该微信已绑定其他账号")
    user.openid = openid
    await session.flush()
