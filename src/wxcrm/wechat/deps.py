"""For routes that call WeChat: the client the app's lifespan made, and the login-code
exchange whose failures a waiting client sees (as `errors.wechat_failure` words them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from wxcrm.wechat.client import LoginSession, WeChatClient
from wxcrm.wechat.errors import WeChatError, wechat_failure


async def get_wechat(request: Request) -> WeChatClient:  # async: no thread pool
    client: WeChatClient = request.app.state.wechat
    return client


WeChatDep = Annotated[WeChatClient, Depends(get_wechat)]


async def exchange_login_code(wechat: WeChatClient, code: str) -> LoginSession:
    """code2Session for a request: a bad code is the client's 400, WeChat's trouble a 502."""
    try:
        return await wechat.code2session(code)
    except WeChatError as error:
        raise wechat_failure(error, "登录凭证 code 无效或已过期，请重新调用 wx.login") from error
