"""Staff login and the current user."""

from __future__ import annotations

from fastapi import APIRouter, Request

from wxcrm.core.db import SessionDep, ShortReadsDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.core.errors import BadRequest
from wxcrm.core.ratelimit import RateLimiterDep
from wxcrm.users import service
from wxcrm.users.deps import CurrentUser
from wxcrm.users.schemas import LoginOut, LoginRequest, UserOut
from wxcrm.wechat.deps import WeChatDep, exchange_login_code

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login")
async def login(
    body: LoginRequest,
    request: Request,
    session: SessionDep,
    short_reads: ShortReadsDep,
    settings: SettingsDep,
    wechat: WeChatDep,
    limiter: RateLimiterDep,
) -> Envelope[LoginOut]:
    """Log in with a username and password; with a wx.login `code`, also bind the openid."""
    rules, ip = limiter.rules, limiter.client_ip(request)
    await limiter.hit(rules.login_per_ip, ip)
    # A locked-out username stays locked even for the right password: a guesser who
    # finds it then learns nothing.
    guesses = (rules.login_failures_per_ip, ip), (rules.login_failures_per_username, body.username)
    async with limiter.failures_counted(*guesses, failure=service.WrongCredentials):
        # No transaction is open while argon2 runs or WeChat is asked: on SQLite a
        # writing one would hold the write lock all that time.
        async with short_reads() as reading:
            user = await service.authenticate(reading, body.username, body.password)
    await limiter.clear(rules.login_failures_per_username, body.username)
    if body.code is not None:
        async with limiter.failures_counted((rules.code_failures_per_ip, ip), failure=BadRequest):
            login_session = await exchange_login_code(wechat, body.code)
        await service.bind_openid(session, user, login_session.openid)
    await service.upgrade_password_hash(session, user, body.password)
    token, expires_in = service.issue_staff_token(settings, user)
    data = LoginOut(token=token, expires_in=expires_in, user=UserOut.of(user))
    return Envelope[LoginOut](data=data, message="登录成功")


@router.get("/me")
async def me(user: CurrentUser) -> Envelope[UserOut]:
    """The user the bearer token belongs to."""
    return Envelope[UserOut](data=UserOut.of(user), message="获取用户信息成功")
