"""Dependencies every domain's routes share: the settings, and the bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from wxcrm.core.settings import Settings

bearer = HTTPBearer(
    auto_error=False,
    description="Staff token from POST /api/auth/login, or a mini-program session token"
    " from POST /api/wechat/openid",
)


async def get_app_settings(request: Request) -> Settings:
    # async: a plain function dependency would be run in a thread pool on every request.
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
