"""The rules of staff accounts: creating and changing them, logging in, issuing tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import Database, rowcount
from wxcrm.core.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from wxcrm.core.logging import openid_hash
from wxcrm.core.models import utcnow
from wxcrm.core.phones import normalize_phone
from wxcrm.core.security import (
    DUMMY_PASSWORD_HASH,
    InvalidToken,
    create_token,
    decode_token,
    hash_password_off_loop,
    password_needs_rehash,
    verify_password_off_loop,
)
from wxcrm.core.settings import Settings
from wxcrm.users.models import Role, SignedOutToken, User
from wxcrm.users.repository import UserRepository
from wxcrm.users.schemas import PHONE_FORMAT, ROLE_INPUTS, UserStatus, UserUpdateIn

log = structlog.get_logger(__name__)

WRONG_CREDENTIALS = "用户名或密码错误"
UNKNOWN_PHONE = "手机号未注册，请联系管理员"
DISABLED = "账号已被禁用"
OPENID_RACE = "该微信正在登录另一个账号，请稍后重试"
BOUND_TO_ANOTHER_WECHAT = "该账号已绑定其他微信，请使用账号密码登录或联系管理员"
# What a write refused by a unique index says when asking again finds no holder (the
# other transaction went on to roll back): trying again then works.
TAKEN_MEANWHILE = "用户名或手机号刚被其他账号占用，请重试"
# The width of the username, name and department columns: a longer value is a clear error
# here rather than one database truncating it and another refusing it.
TEXT_MAX = 64
USER_NOT_FOUND = "员工不存在"
LAST_ADMIN = "至少需要保留一名启用的系统管理员：不能更改最后一名管理员的角色或停用其账号"
SELF_SUSPEND = "不能停用自己的账号"


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: Role,
    name: str | None = None,
    phone: str | None = None,
    department: str | None = None,
) -> User:
    """A new staff account; its username and phone (normalised) must be no other account's."""
    users = UserRepository(session)
    username = _text("username", "用户名", username)
    phone = _phone(phone) if phone else None
    await _refuse_taken(users, username=username, phone=phone)
    user = User(
        username=username,
        password_hash=await hash_password_off_loop(password),
        role=role.value,
        name=_text("name", "姓名", name) if name is not None else username,
        phone=phone,
        department=_optional_text("department", "部门", department),
    )
    try:
        async with session.begin_nested():
            await users.add(user)
    except IntegrityError as error:
        # A concurrent create took the username or the phone (now committed: asked again,
        # the answer names which).
        await _refuse_taken(users, username=username, phone=phone)
        raise Conflict(TAKEN_MEANWHILE) from error
    return user


async def update_user(
    session: AsyncSession,
    username: str,
    *,
    phone: str | None = None,
    department: str | None = None,
    name: str | None = None,
    role: Role | None = None,
) -> User:
    """Change what is given of an account; an empty phone or department clears it."""
    users = UserRepository(session)
    user = await users.by_username(username)
    if user is None:
        raise NotFound(f"用户 {username} 不存在")
    user_id = user.id  # a refused write below expires the object
    new_phone = _phone(phone) if phone and phone.strip() else None
    if new_phone is not None and new_phone != user.phone:
        await _refuse_taken(users, phone=new_phone, owner_id=user_id)
    new_department = _optional_text("department", "部门", department)
    new_name = _text("name", "姓名", name) if name is not None else None
    try:
        async with session.begin_nested():
            if phone is not None:
                user.phone = new_phone
            if department is not None:
                user.department = new_department
            if new_name is not None:
                user.name = new_name
            if role is not None:
                user.role = role.value
    except IntegrityError as error:
        # Another account took the phone at the same moment (now committed: asked again,
        # the answer names it).
        await _refuse_taken(users, phone=new_phone, owner_id=user_id)
        raise Conflict(TAKEN_MEANWHILE) from error
    return user


async def get_user(session: AsyncSession, user_id: str) -> User:
    user = await UserRepository(session).get(user_id)
    if user is None:
        raise NotFound(USER_NOT_FOUND)
    return user


async def list_users(
    session: AsyncSession,
    *,
    search: str | None,
    role: str | None,
    status: UserStatus | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[User], int]:
    """A page of accounts, newest first; `role` is a wire code or ours."""
    return await UserRepository(session).page(
        search=search,
        role=ROLE_INPUTS[role] if role is not None else None,
        active=None if status is None else status is UserStatus.active,
        offset=offset,
        limit=limit,
    )


async def change_user(session: AsyncSession, user_id: str, changes: UserUpdateIn) -> User:
    """An admin's change of an account: what `changes` gives (a null phone or department
    clears it); the last active admin keeps the admin role."""
    user = await get_user(session, user_id)
    given = changes.model_fields_set
    role = ROLE_INPUTS[changes.role] if changes.role is not None else None
    if role is not None and role.value != user.role:
        await _keep_an_admin(session, user)
    return await update_user(
        session,
        user.username,
        name=changes.name,
        role=role,
        # update_user clears a field given as "": so does a null here.
        phone=(changes.phone or "") if "phone" in given else None,
        department=(changes.department or "") if "department" in given else None,
    )


async def suspend_user(session: AsyncSession, by: User, user_id: str) -> User:
    """Suspend an account (not one's own, nor the last active admin); its tokens stop at once."""
    user = await get_user(session, user_id)
    if user.id == by.id:
        raise Conflict(SELF_SUSPEND)
    if user.is_active:
        await _keep_an_admin(session, user)
    user = await set_active(session, user.username, active=False)
    log.info("staff account suspended", user_id=user.id, by_user_id=by.id)
    return user


async def resume_user(session: AsyncSession, by: User, user_id: str) -> User:
    user = await set_active(session, (await get_user(session, user_id)).username, active=True)
    log.info("staff account resumed", user_id=user.id, by_user_id=by.id)
    return user


async def reset_password(session: AsyncSession, by: User, user_id: str, password: str) -> User:
    """Give an account a new password. Hashed before the first query: no transaction (on
    SQLite, no write lock) is open while argon2 runs."""
    password_hash = await hash_password_off_loop(password)
    user = await get_user(session, user_id)
    user.password_hash = password_hash
    user.password_changed_at = utcnow()  # the account's tokens from before stop working
    await session.flush()
    log.info("staff password reset", user_id=user.id, by_user_id=by.id)
    return user


async def _keep_an_admin(session: AsyncSession, user: User) -> None:
    """A 409 when `user` is the last active admin, about to lose the role or be suspended."""
    if not user.is_admin or not user.is_active:
        return
    admins = await UserRepository(session).lock_active_admins()
    if list(admins) == [user.id]:
        raise Conflict(LAST_ADMIN)


def _phone(raw: str) -> str:
    """`raw` as a normalised mainland mobile, or a 400 on the phone field."""
    phone = normalize_phone(raw)
    if phone is None:
        raise ValidationFailed.on_field("phone", PHONE_FORMAT)
    return phone


async def _refuse_taken(
    users: UserRepository,
    *,
    username: str | None = None,
    phone: str | None = None,
    owner_id: str | None = None,
) -> None:
    """A 409 when another account than `owner_id` has this username or phone."""
    if username is not None and await users.by_username(username) is not None:
        raise Conflict(f"用户名 {username} 已存在")
    holder = await users.by_phone(phone) if phone is not None else None
    if holder is not None and holder.id != owner_id:
        raise Conflict(f"手机号 {phone} 已被用户 {holder.username} 使用")


def _text(field: str, label: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise ValidationFailed.on_field(field, f"{label}不能为空")
    if len(value) > TEXT_MAX:
        raise ValidationFailed.on_field(field, f"{label}不能超过{TEXT_MAX}个字符")
    return value


def _optional_text(field: str, label: str, value: str | None) -> str | None:
    return _text(field, label, value) if value and value.strip() else None


class WrongCredentials(Unauthorized):
    """A wrong username or password: the failure that login rate limits count."""

    def __init__(self) -> None:
        super().__init__(WRONG_CREDENTIALS)


async def authenticate(session: AsyncSession, username: str, password: str) -> User:
    """The active user with this username and password. Reads only: call it in a short
    session, so no transaction is open while the password is checked."""
    user = await UserRepository(session).by_username(username)
    if user is None:
        await verify_password_off_loop(DUMMY_PASSWORD_HASH, password)  # a real miss's cost
        raise WrongCredentials()
    if not await verify_password_off_loop(user.password_hash, password):
        raise WrongCredentials()
    if not user.is_active:
        raise Unauthorized("账号已停用")
    return user


async def upgrade_password_hash(session: AsyncSession, user: User, password: str) -> None:
    """Rehash a password stored with older argon2 parameters, now that we know it."""
    if password_needs_rehash(user.password_hash):
        session.add(user)
        user.password_hash = await hash_password_off_loop(password)
        await session.flush()


async def set_active(session: AsyncSession, username: str, *, active: bool) -> User:
    """Disable or re-enable an account; a disabled account's tokens stop working at once
    (every request reads the account)."""
    user = await UserRepository(session).by_username(username)
    if user is None:
        raise NotFound(f"用户 {username} 不存在")
    user.is_active = active
    await session.flush()
    return user


def issue_staff_token(settings: Settings, user: User) -> tuple[str, int]:
    lifetime = timedelta(minutes=settings.staff_token_minutes)
    now = utcnow()
    # `iat` counts whole seconds; a password changed in the same second as a login must still
    # tell the two apart (users/deps.py).
    claims = {"role": user.role, "iat_ms": int(now.timestamp() * 1000)}
    token = create_token(settings.signing_key(), user.id, "staff", lifetime, claims, now)
    return token, int(lifetime.total_seconds())


async def miniprogram_login(session: AsyncSession, phone: str, openid: str) -> User:
    """The active staff member with this (normalised) phone, when `openid` is the WeChat
    bound to it, or when none is bound yet (trust on first use: it is bound now).

    A phone is no secret (advisors hand theirs to customers), so it never moves an account
    to another WeChat: that takes the password login with a code, or an admin clearing the
    binding (`wxcrm users update --unbind-wechat`).
    """
    user = await UserRepository(session).by_phone(phone)
    if user is None:
        raise Unauthorized(UNKNOWN_PHONE)
    if not user.is_active:
        raise Unauthorized(DISABLED)
    if user.openid != openid:
        if user.openid is not None:
            raise _bound_elsewhere(user.id, openid)
        await bind_openid(session, user, openid, first_only=True)
    return user


async def bind_openid(
    session: AsyncSession, user: User, openid: str, *, first_only: bool = False
) -> None:
    """Bind the mini-program openid a staff member logged in with to its account; with
    `first_only`, only while the account has none (a 401 if a concurrent login bound one).

    One openid belongs to one account: the caller proved with its code that the WeChat is
    its own, so it moves from an account that held it (a handed-over work phone), where
    refusing would lock the new holder out until someone unbinds it by hand.
    """
    session.add(user)  # maybe read in a short session of its own
    users = UserRepository(session)
    holder = await users.by_openid(openid)
    moved_from = holder.id if holder is not None and holder.id != user.id else None
    replaced = user.openid if user.openid not in (None, openid) else None
    user_id = user.id  # a refused bind expires the object
    try:
        async with session.begin_nested():
            if holder is not None and moved_from is not None:
                holder.openid = None
                await session.flush()  # freed before it is taken again: the column is unique
            if first_only:
                # Compare-and-set: of two first logins at the same moment, one binds.
                if not await users.bind_openid_if_unbound(user, openid):
                    raise _bound_elsewhere(user_id, openid)
            else:
                user.openid = openid
    except IntegrityError as error:  # a login at the same moment bound it to another account
        raise Conflict(OPENID_RACE) from error
    if moved_from is not None:
        log.warning(
            "staff openid moved to another account",
            from_user_id=moved_from,
            to_user_id=user.id,
            openid_sha256=openid_hash(openid),
        )
    if replaced is not None:
        log.warning(
            "staff account rebound to another wechat",
            user_id=user.id,
            from_openid_sha256=openid_hash(replaced),
            to_openid_sha256=openid_hash(openid),
        )


async def unbind_openid(session: AsyncSession, user: User) -> bool:
    """Clear the WeChat bound to `user`, so that its next phone login binds the WeChat it
    comes from; whether one was bound."""
    if user.openid is None:
        return False
    log.info("staff openid unbound", user_id=user.id, openid_sha256=openid_hash(user.openid))
    user.openid = None
    await session.flush()
    return True


def _bound_elsewhere(user_id: str, openid: str) -> Unauthorized:
    """The refusal of a phone login from a WeChat the account is not bound to, logged: it
    may be someone who knows the phone trying to take the account over."""
    log.warning(
        "staff phone login from another wechat refused",
        user_id=user_id,
        openid_sha256=openid_hash(openid),
    )
    return Unauthorized(BOUND_TO_ANOTHER_WECHAT)


async def sign_out(session: AsyncSession, settings: Settings, token: str) -> None:
    """End a session for good: its token is refused from now until it expires. A token that
    is already invalid or expired needs nothing."""
    try:
        claims = decode_token(settings.signing_key(), token, "staff")
    except InvalidToken:
        return
    await UserRepository(session).sign_out(token, datetime.fromtimestamp(claims["exp"], UTC))


async def forget_signed_out(
    database: Database, settings: Settings, now: datetime | None = None
) -> int:
    """Drop signed-out tokens past their expiry, which refuses them anyway (a scheduled job)."""
    async with database.writer() as session:
        result = await session.execute(
            delete(SignedOutToken).where(SignedOutToken.expires_at < (now or utcnow()))
        )
        await session.commit()
    return rowcount(result)
