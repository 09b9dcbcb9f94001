"""The WeChat client the app's lifespan made, for routes that call WeChat."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from wxcrm.wechat.client import WeChatClient


def get_wechat(request: Request) -> WeChatClient:
    client: WeChatClient = request.app.state.wechat
    return client


WeChatDep = Annotated[WeChatClient, Depends(get_wechat)]
