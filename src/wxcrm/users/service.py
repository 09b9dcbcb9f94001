"""The rules of staff accounts: creating them, logging in, issuing tokens."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.errors import Conflict, Unauthorized
from wxcrm.core.security import (
    DUMMY_PASSWORD_HASH,
    create_token,
    hash_password,
    password_needs_rehash,
    verify_password,
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
            password_hash=hash_password(password),
            role=role.value,
            name=name or username,
            phone=phone,
        )
    )


async def authenticate(session: AsyncSession, username: str, password: str) -> User:
    user = await UserRepository(session).by_username(username)
    if user is None:
        verify_password(DUMMY_PASSWORD_HASH, password)  # same cost as a real miss
        raise Unauthorized(WRONG_CREDENTIALS)
    if not verify_password(user.password_hash, password):
        raise Unauthorized(WRONG_CREDENTIALS)
    if not user.is_active:
        raise Unauthorized("账号已停用")
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def issue_staff_token(settings: Settings, user: User) -> tuple[str, int]:
    lifetime = timedelta(minutes=settings.staff_token_minutes)
    token = create_token(
        settings.signing_key(), user.id, "staff", lifetime, claims={"role": user.role}
    )
    return token, int(lifetime.total_seconds())


async def bind_openid(session: AsyncSession, user: User, openid: str) -> None:
    """Bind the mini-program openid an advisor logged in with to its account."""
    holder = await UserRepository(session).by_openid(openid)
    if holder is not None and holder.id != user.id:
        raise Conflict("该微信已绑定其他账号")
    user.openid = openid
    await session.flush()
