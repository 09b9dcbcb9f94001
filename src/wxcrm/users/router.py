"""Staff login and the current user."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from wxcrm.core.db import SessionDep
from wxcrm.core.envelope import envelope
from wxcrm.users import service
from wxcrm.users.deps import CurrentUser, SettingsDep
from wxcrm.users.models import User
from wxcrm.users.schemas import LoginRequest, UserOut
from wxcrm.wechat.deps import WeChatDep, exchange_login_code

router = APIRouter(prefix="/api/auth", tags=["auth"])


def user_out(user: User) -> dict[str, Any]:
    out = UserOut.model_validate(user)
    out.openid_bound = user.openid is not None
    return out.model_dump(by_alias=True, mode="json")


@router.post("/login")
async def login(
    body: LoginRequest, session: SessionDep, settings: SettingsDep, wechat: WeChatDep
) -> dict[str, Any]:
    """Log in with a username and password; with a wx.login `code`, also bind the openid."""
    user = await service.authenticate(session, body.username, body.password)
    if body.code is not None:
        login_session = await exchange_login_code(wechat, body.code)
        await service.bind_openid(session, user, login_session.openid)
    token, expires_in = service.issue_staff_token(settings, user)
    return envelope({"token": token, "expiresIn": expires_in, "user": user_out(user)}, "登录成功")


@router.get("/me")
async def me(user: CurrentUser) -> dict[str, Any]:
    """The user the bearer token belongs to."""
    return envelope(user_out(user), "获取用户信息成功")
