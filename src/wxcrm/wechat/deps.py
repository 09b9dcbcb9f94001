"""For routes that call WeChat: the client the app's lifespan made, and what WeChat's
errors become for the client that waited on them."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request

from wxcrm.core.errors import AppError, BadRequest, UpstreamWeChatError
from wxcrm.wechat.client import LoginSession, WeChatClient
from wxcrm.wechat.errors import ErrorKind, WeChatError

log = structlog.get_logger(__name__)


async def get_wechat(request: Request) -> WeChatClient:  # async: no thread pool
    client: WeChatClient = request.app.state.wechat
    return client


WeChatDep = Annotated[WeChatClient, Depends(get_wechat)]


# WeChat errcodes that mean the code the client sent is no good: the client's fault (400).
BAD_CODE_ERRCODES = {40029, 40163, 40226}


def wechat_failure(error: WeChatError, bad_code_message: str) -> AppError:
    """What a WeChat error on a call the request waited for becomes for the client."""
    if error.errcode in BAD_CODE_ERRCODES:
        return BadRequest(bad_code_message, {"errcode": error.errcode})
    message = (
        "微信服务暂不可用，请稍后再试" if error.kind is ErrorKind.transient else "微信接口调用失败"
    )
    # WeChat's own errmsg (request ids, internal wording) stays in our log: these callers
    # are not yet authenticated.
    log.warning("wechat call failed", errcode=error.errcode, errmsg=error.errmsg)
    return UpstreamWeChatError(message, {"errcode": error.errcode})


async def exchange_login_code(wechat: WeChatClient, code: str) -> LoginSession:
    """code2Session for a request: a bad code is the client's 400, WeChat's trouble a 502."""
    try:
        return await wechat.code2session(code)
    except WeChatError as error:
        raise wechat_failure(error, "登录凭证 code 无效或已过期，请重新调用 wx.login") from error
