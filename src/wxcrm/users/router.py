"""Staff login and the current user."""

from __future__ import annotations

from fastapi import APIRouter, Request

from wxcrm.core.db import SessionDep, ShortReadsDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.core.errors import BadRequest, Unauthorized
from wxcrm.core.ratelimit import RateLimiterDep
from wxcrm.users import service
from wxcrm.users.deps import CurrentUser
from wxcrm.users.schemas import (
    LoginOut,
    LoginRequest,
    MiniprogramLoginOut,
    MiniprogramLoginRequest,
    StaffUserOut,
    UserOut,
)
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
    """Log in with a username and password; a wx.login `code` binds the account to that WeChat."""
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
    data = LoginOut(token=token, access_token=token, expires_in=expires_in, user=UserOut.of(user))
    return Envelope[LoginOut](data=data, message="登录成功")


@router.post("/miniprogram-login")
async def miniprogram_login(
    body: MiniprogramLoginRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    wechat: WeChatDep,
    limiter: RateLimiterDep,
) -> Envelope[MiniprogramLoginOut]:
    """Staff mini program: a wx.login `code` and the phone, from the WeChat the first one bound."""
    rules, ip = limiter.rules, limiter.client_ip(request)
    await limiter.hit(rules.login_per_ip, ip)
    # An unregistered phone counts as a wrong password does: otherwise staff phones could
    # be tried one after another. A locked-out address is refused before WeChat is asked.
    async with limiter.failures_counted((rules.login_failures_per_ip, ip), failure=Unauthorized):
        async with limiter.failures_counted((rules.code_failures_per_ip, ip), failure=BadRequest):
            # Before the session's first query: no transaction is open while WeChat answers.
            login_session = await exchange_login_code(wechat, body.code)
        user = await service.miniprogram_login(session, body.phone, login_session.openid)
    token, _ = service.issue_staff_token(settings, user)
    data = MiniprogramLoginOut(
        access_token=token, user=StaffUserOut.of(user), openid=login_session.openid
    )
    return Envelope[MiniprogramLoginOut](data=data, message="小程序登录成功")


@router.get("/me")
async def me(user: CurrentUser) -> Envelope[UserOut]:
    """The user the bearer token belongs to."""
    return Envelope[UserOut](data=UserOut.of(user), message="获取用户信息成功")
