"""The console's session and CSRF tokens.

The session cookie holds the staff token POST /api/auth/login issues (signed with the app's
signing key): any process of the app accepts it, and `get_current_user` checks the account
on every request, so a suspended account's session stops at once. The CSRF token is an
HMAC of a random per-sign-in nonce (a cookie) and the session: a page of another site can
neither read nor compute it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from wxcrm.core.db import ShortReadsDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.errors import Forbidden, Unauthorized
from wxcrm.core.settings import Settings
from wxcrm.users.deps import get_current_user
from wxcrm.users.models import User

SESSION_COOKIE = "wxcrm_console"
NONCE_COOKIE = "wxcrm_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_REFUSED = "页面已过期或请求来源不明（CSRF 校验失败），请刷新页面后重试"


class SignInRequired(Unauthorized):
    """No console session, or one that no longer holds (expired, account suspended)."""


def csrf_token(settings: Settings, nonce: str, session: str | None) -> str:
    message = f"console-csrf|{nonce}|{session or ''}".encode()
    return hmac.new(settings.signing_key().encode(), message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def page_csrf(request: Request, settings: Settings) -> tuple[str, str | None]:
    """The CSRF token for the page being rendered, and the nonce cookie to set when the
    browser has none yet (its first visit)."""
    nonce = request.cookies.get(NONCE_COOKIE)
    fresh = None if nonce else new_nonce()
    token = csrf_token(settings, nonce or fresh or "", request.cookies.get(SESSION_COOKIE))
    return token, fresh


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


async def guard_csrf(request: Request, settings: SettingsDep) -> None:
    """Refuse (403) a state-changing console request without this session's CSRF token,
    sent in the X-CSRF-Token header (htmx) or the form's hidden field."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    nonce = request.cookies.get(NONCE_COOKIE)
    if not sent or not nonce:
        raise Forbidden(CSRF_REFUSED)
    expected = csrf_token(settings, nonce, request.cookies.get(SESSION_COOKIE))
    if not hmac.compare_digest(sent, expected):
        raise Forbidden(CSRF_REFUSED)


async def console_user(request: Request, short_reads: ShortReadsDep, settings: SettingsDep) -> User:
    """The signed-in staff member, checked as the API checks a bearer token."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired()
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    try:
        return await get_current_user(short_reads, settings, credentials)
    except Unauthorized as refused:
        raise SignInRequired(refused.message) from refused


ConsoleUser = Annotated[User, Depends(console_user)]
