"""The mini-program customer behind a request (its session token fixes its openid), and
where its actions are written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from wxcrm.core.deps import SettingsDep, bearer
from wxcrm.core.errors import Unauthorized
from wxcrm.core.logging import identify_caller
from wxcrm.core.security import InvalidToken, decode_token
from wxcrm.miniprogram.service import ActionRequest, RecordedAction


async def get_openid(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    if credentials is None:
        raise Unauthorized("缺少小程序登录凭证，请先调用 /api/wechat/openid")
    try:
        claims = decode_token(settings.signing_key(), credentials.credentials, "miniprogram")
    except InvalidToken as exc:
        message = "小程序登录已过期，请重新登录" if str(exc) == "expired" else "小程序登录凭证无效"
        raise Unauthorized(message) from exc
    openid = str(claims["sub"])
    identify_caller(openid=openid)
    return openid


CurrentOpenid = Annotated[str, Depends(get_openid)]


@dataclass(frozen=True)
class ActionCaller:
    """Who sends a customer action: the openid its session token proves, or None for a
    caller without a token while MINIPROGRAM_ANONYMOUS_ACTIONS is on (it is who it says)."""

    openid: str | None

    @property
    def verified(self) -> bool:
        return self.openid is not None


async def get_action_caller(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ActionCaller:
    # No Authorization header at all, not merely no bearer token: a header that is there
    # but wrong is refused as ever.
    if settings.miniprogram_anonymous_actions and "authorization" not in request.headers:
        return ActionCaller(openid=None)
    return ActionCaller(openid=await get_openid(settings, credentials))


ActionCallerDep = Annotated[ActionCaller, Depends(get_action_caller)]


ActionRecorder = Callable[[ActionRequest], Awaitable[RecordedAction]]


async def get_action_recorder(request: Request) -> ActionRecorder:
    """Customer actions go through the process's group commit (`app.state.action_commits`):
    the request holds no connection of its own, and is answered once its action commits."""
    recorder: ActionRecorder = request.app.state.action_commits.submit
    return recorder


ActionRecorderDep = Annotated[ActionRecorder, Depends(get_action_recorder)]
