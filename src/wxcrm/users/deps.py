"""Who is calling: `CurrentUser`, and role checks every router uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials

from wxcrm.core.db import ShortReadsDep
from wxcrm.core.deps import SettingsDep, bearer
from wxcrm.core.errors import Forbidden, Unauthorized
from wxcrm.core.logging import identify_caller
from wxcrm.core.security import InvalidToken, decode_token
from wxcrm.users.models import Role, User
from wxcrm.users.repository import UserRepository


async def get_current_user(
    short_reads: ShortReadsDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The staff member whose token this is.

    Read in a short session of its own, closed before the route runs: on SQLite the
    request's writing transaction (and its write lock) then starts at the route's first
    query, not before a route that first waits on WeChat; and the request never holds a
    second pooled connection beside its own.
    """
    if credentials is None:
        raise Unauthorized("缺少登录凭证")
    try:
        claims = decode_token(settings.signing_key(), credentials.credentials, "staff")
    except InvalidToken as exc:
        raise Unauthorized(
            "登录已过期，请重新登录" if str(exc) == "expired" else "登录凭证无效"
        ) from exc
    async with short_reads() as session:
        user, signed_out = await UserRepository(session).with_sign_out(
            claims["sub"], credentials.credentials
        )
    if signed_out:
        raise Unauthorized("已退出登录，请重新登录")
    if user is None or not user.is_active:
        raise Unauthorized("账号不存在或已停用")
    if _issued_before(claims, user.password_changed_at):
        raise Unauthorized("密码已修改，请重新登录")
    identify_caller(staff_id=user.id)
    return user


def _issued_before(claims: dict[str, Any], moment: datetime | None) -> bool:
    """Whether the token was issued before `moment` (a password change). A token without
    milliseconds counts from the start of its second: within that second it is refused."""
    if moment is None:
        return False
    issued_ms = claims.get("iat_ms", int(claims.get("iat", 0)) * 1000)
    return int(issued_ms) < int(moment.timestamp() * 1000)


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[User], Awaitable[User]]:
    """A dependency that lets through only users holding one of `roles`."""
    allowed = {role.value for role in roles}

    async def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise Forbidden()
        return user

    return check


CurrentManager = Annotated[User, Depends(require_roles(Role.admin, Role.manager))]
CurrentAdmin = Annotated[User, Depends(require_roles(Role.admin))]
CurrentAdvisor = Annotated[User, Depends(require_roles(Role.advisor))]
