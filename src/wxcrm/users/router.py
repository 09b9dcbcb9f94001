"""Staff login and the current user (/api/auth); the admins' staff accounts API (/api/users)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import SessionDep, ShortReads, ShortReadsDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.core.errors import BadRequest, Unauthorized
from wxcrm.core.logging import identify_caller
from wxcrm.core.pagination import Page, PageDep
from wxcrm.core.ratelimit import RateLimiter, RateLimiterDep
from wxcrm.core.settings import Settings
from wxcrm.users import service
from wxcrm.users.deps import CurrentAdmin, CurrentUser
from wxcrm.users.models import User
from wxcrm.users.schemas import (
    ROLE_INPUTS,
    LoginOut,
    LoginRequest,
    MiniprogramLoginOut,
    MiniprogramLoginRequest,
    PasswordResetIn,
    RoleInput,
    StaffAccountOut,
    StaffUserOut,
    UserCreateIn,
    UserId,
    UserOut,
    UserStatus,
    UserUpdateIn,
)
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.deps import WeChatDep, exchange_login_code

auth_routes = APIRouter(prefix="/api/auth", tags=["auth"])
account_routes = APIRouter(prefix="/api/users", tags=["users"])


@auth_routes.post("/login")
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
    data = await password_login(body, request, session, short_reads, settings, wechat, limiter)
    return Envelope[LoginOut](data=data, message="登录成功")


async def password_login(
    body: LoginRequest,
    request: Request,
    session: AsyncSession,
    short_reads: ShortReads,
    settings: Settings,
    wechat: WeChatClient,
    limiter: RateLimiter,
) -> LoginOut:
    """The password login with its rate limits, for the API and the console alike; a refusal
    is raised (Unauthorized, RateLimited, BadRequest)."""
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
    identify_caller(staff_id=user.id)
    await limiter.clear(rules.login_failures_per_username, body.username)
    if body.code is not None:
        async with limiter.failures_counted((rules.code_failures_per_ip, ip), failure=BadRequest):
            login_session = await exchange_login_code(wechat, body.code)
        await service.bind_openid(session, user, login_session.openid)
    await service.upgrade_password_hash(session, user, body.password)
    token, expires_in = service.issue_staff_token(settings, user)
    return LoginOut(token=token, access_token=token, expires_in=expires_in, user=UserOut.of(user))


@auth_routes.post("/miniprogram-login")
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
    identify_caller(staff_id=user.id)
    token, _ = service.issue_staff_token(settings, user)
    data = MiniprogramLoginOut(
        access_token=token, user=StaffUserOut.of(user), openid=login_session.openid
    )
    return Envelope[MiniprogramLoginOut](data=data, message="小程序登录成功")


@auth_routes.get("/me")
async def me(user: CurrentUser) -> Envelope[UserOut]:
    """The user the bearer token belongs to."""
    return Envelope[UserOut](data=UserOut.of(user), message="获取用户信息成功")


@account_routes.get("")
async def list_users(
    session: SessionDep,
    admin: CurrentAdmin,
    page: PageDep,
    search: Annotated[str | None, Query(max_length=64, description="用户名、姓名或手机号")] = None,
    role: Annotated[RoleInput | None, Query(description="角色代码")] = None,
    status: Annotated[UserStatus | None, Query(description="active 或 inactive")] = None,
) -> Envelope[Page[StaffAccountOut]]:
    """Staff accounts, newest first, searched and filtered by role and status (admins only)."""
    users, total = await service.list_users(
        session,
        search=search.strip() if search else None,
        role=role,
        status=status,
        offset=page.offset,
        limit=page.limit,
    )
    items = [StaffAccountOut.of(user) for user in users]
    return Envelope[Page[StaffAccountOut]](
        data=Page[StaffAccountOut].of(items, total, page), message="获取员工列表成功"
    )


@account_routes.post("")
async def create_user(
    body: UserCreateIn, session: SessionDep, admin: CurrentAdmin
) -> Envelope[StaffAccountOut]:
    """Create a staff account; `role` as its code (employee) or ours (advisor)."""
    user = await service.create_user(
        session,
        username=body.username,
        password=body.password,
        role=ROLE_INPUTS[body.role],
        name=body.name,
        phone=body.phone,
        department=body.department,
    )
    return _account(user, "创建员工成功")


@account_routes.patch("/{user_id}")
async def update_user(
    user_id: UserId, body: UserUpdateIn, session: SessionDep, admin: CurrentAdmin
) -> Envelope[StaffAccountOut]:
    """Change an account's name, phone, department or role."""
    return _account(await service.change_user(session, user_id, body), "更新员工成功")


@account_routes.post("/{user_id}/suspend")
async def suspend_user(
    user_id: UserId, session: SessionDep, admin: CurrentAdmin
) -> Envelope[StaffAccountOut]:
    """Suspend an account: it can no longer log in, and its tokens stop at once."""
    return _account(await service.suspend_user(session, admin, user_id), "员工已停用")


@account_routes.post("/{user_id}/resume")
async def resume_user(
    user_id: UserId, session: SessionDep, admin: CurrentAdmin
) -> Envelope[StaffAccountOut]:
    """Let a suspended account log in again."""
    return _account(await service.resume_user(session, admin, user_id), "员工已启用")


@account_routes.post("/{user_id}/reset-password")
async def reset_password(
    user_id: UserId, body: PasswordResetIn, session: SessionDep, admin: CurrentAdmin
) -> Envelope[StaffAccountOut]:
    """Give an account a new password."""
    user = await service.reset_password(session, admin, user_id, body.password)
    return _account(user, "密码已重置")


@account_routes.post("/{user_id}/unbind-wechat")
async def unbind_wechat(
    user_id: UserId, session: SessionDep, admin: CurrentAdmin
) -> Envelope[StaffAccountOut]:
    """Clear the WeChat bound to an account: its next phone login binds the one it comes from."""
    user = await service.get_user(session, user_id)
    await service.unbind_openid(session, user)
    return _account(user, "已解除微信绑定")


def _account(user: User, message: str) -> Envelope[StaffAccountOut]:
    return Envelope[StaffAccountOut](data=StaffAccountOut.of(user), message=message)


# What the app mounts: both prefixes.
router = APIRouter()
router.include_router(auth_routes)
router.include_router(account_routes)
