"""The console's pages: sign-in, sign-out and the frame with its 首页."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from pydantic import ValidationError

from wxcrm.console import (
    customers,
    dashboard,
    notifications,
    pool,
    record,
    staff,
    system,
    transfer,
)
from wxcrm.console.frame import COMPANY_NAME
from wxcrm.console.routing import console_router
from wxcrm.console.session import (
    NONCE_COOKIE,
    SESSION_COOKIE,
    new_nonce,
    page_csrf,
    set_cookie,
)
from wxcrm.console.templating import STATIC, STATIC_FILES, render, static_version
from wxcrm.core.db import SessionDep, ShortReadsDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.errors import NotFound, RateLimited, Unauthorized
from wxcrm.core.ratelimit import RateLimiterDep
from wxcrm.core.settings import Settings
from wxcrm.users.router import password_login
from wxcrm.users.schemas import LoginRequest
from wxcrm.users.service import sign_out
from wxcrm.wechat.deps import WeChatDep

LOGIN_FORMAT = "请输入用户名（最多 64 个字符）和密码（最多 128 个字符）"
YEAR = 365 * 24 * 3600


router = console_router()
for page in (dashboard, customers, record, pool, transfer, notifications, staff, system):
    router.include_router(page.router)


@router.get("/login")
async def login_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    """The sign-in form."""
    return _login_form(request, settings)


@router.post("/login")
async def login(
    request: Request,
    session: SessionDep,
    short_reads: ShortReadsDep,
    settings: SettingsDep,
    wechat: WeChatDep,
    limiter: RateLimiterDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    """Sign in: the API's password login, its rate limits included; the session in a cookie."""
    try:
        body = LoginRequest(username=username.strip(), password=password)
    except ValidationError:
        return _login_form(request, settings, LOGIN_FORMAT, username, status_code=400)
    try:
        login = await password_login(body, request, session, short_reads, settings, wechat, limiter)
    except (Unauthorized, RateLimited) as refused:
        return _login_form(
            request, settings, refused.message, username, status_code=refused.status_code
        )
    response = RedirectResponse("/", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, login.token, max_age=login.expires_in)
    # A new CSRF nonce per sign-in: a token seen before it is worth nothing after.
    set_cookie(request, response, NONCE_COOKIE, new_nonce(), max_age=None)
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep, settings: SettingsDep) -> RedirectResponse:
    """Sign out: the session's token is refused from now on, in every process (a copy of the
    cookie is worth nothing), and the browser forgets it."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await sign_out(session, settings, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(NONCE_COOKIE, path="/")
    return response


@router.get("/console/static/{version}/{name}")
async def static_file(version: str, name: str) -> FileResponse:
    """A static file of the console under its versioned URL, cached for good."""
    if version != static_version() or name not in STATIC_FILES:
        raise NotFound()
    media = "text/plain; charset=utf-8" if name.endswith(".LICENSE") else None
    return FileResponse(
        STATIC / name,
        media_type=media,
        headers={"Cache-Control": f"public, max-age={YEAR}, immutable"},
    )


def _login_form(
    request: Request,
    settings: Settings,
    error: str | None = None,
    username: str = "",
    *,
    status_code: int = 200,
) -> HTMLResponse:
    csrf, fresh_nonce = page_csrf(request, settings)
    response = render(
        request, "login.html", status_code,
        company=COMPANY_NAME, error=error, username=username, csrf=csrf,
    )  # fmt: skip
    if fresh_nonce is not None:
        set_cookie(request, response, NONCE_COOKIE, fresh_nonce, max_age=None)
    return response
