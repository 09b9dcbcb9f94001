"""Wire shapes of staff accounts and login."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from wxcrm.core.ids import OBJECT_ID_PATTERN
from wxcrm.core.phones import normalize_phone
from wxcrm.users.models import Role, User

# The original system's role codes, which the staff mini program knows: our advisor is its
# `employee`. Every answer shows these; the database and the CLI keep ours.
WIRE_ROLES = {Role.admin: "admin", Role.manager: "manager", Role.advisor: "employee"}
ROLE_LABELS = {"admin": "系统管理员", "manager": "经理", "employee": "员工"}
ROLE_PERMISSIONS = {
    "admin": ["*"],
    "manager": ["customer:all", "user:view"],
    "employee": ["customer:view", "customer:create", "customer:edit"],
}


def wire_role(role: str) -> str:
    """The original's code for one of our roles."""
    return WIRE_ROLES[Role(role)]


PHONE_FORMAT = "手机号格式不正确（需为中国大陆11位手机号）"


def _staff_phone(raw: str) -> str:
    """`raw` as the normalised mobile a staff account is found by; ValueError if it is none."""
    phone = normalize_phone(raw)
    if phone is None:
        raise ValueError(PHONE_FORMAT)
    return phone


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)
    # A wx.login code: an advisor logging in from the mini program binds its openid.
    code: str | None = Field(None, min_length=1, max_length=128)


class MiniprogramLoginRequest(BaseModel):
    code: str = Field(min_length=1, max_length=128, description="wx.login 的 code")
    phone: Annotated[str, AfterValidator(_staff_phone)] = Field(
        min_length=1, max_length=32, description="员工手机号（可带 +86、空格或横线）"
    )


class StaffUserOut(BaseModel):
    """A staff account in the original system's shape, as the staff mini program's login
    answers it: role as its code (our advisor is `employee`), never a password hash or openid.
    We keep no e-mail address: `email` is absent, as the original leaves it when unset."""

    model_config = ConfigDict(
        populate_by_name=True, json_schema_serialization_defaults_required=True
    )

    id: str
    username: str
    name: str
    phone: str | None
    avatar: None = Field(None, description="头像：本系统不保存，恒为 null")
    role: str = Field(description="角色代码：admin、manager、employee")
    role_label: str = Field(serialization_alias="roleLabel", description="角色中文名")
    department: str | None
    permissions: list[str]
    created_at: datetime = Field(serialization_alias="createdAt")

    @staticmethod
    def fields_of(user: User) -> dict[str, Any]:
        role = wire_role(user.role)
        return {
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "phone": user.phone,
            "role": role,
            "role_label": ROLE_LABELS[role],
            "department": user.department,
            "permissions": list(ROLE_PERMISSIONS[role]),
            "created_at": user.created_at,
        }

    @classmethod
    def of(cls, user: User) -> Self:
        return cls(**cls.fields_of(user))


class UserOut(StaffUserOut):
    """A staff account as /api/auth/me and the password login show it: the original's
    fields, and the `_id`, `isActive` and `openidBound` our own clients read."""

    active: bool
    updated_at: datetime = Field(serialization_alias="updatedAt")
    legacy_id: str = Field(serialization_alias="_id", description="同 id")
    is_active: bool = Field(serialization_alias="isActive", description="同 active")
    openid_bound: bool = Field(serialization_alias="openidBound", description="已绑定小程序微信")

    @classmethod
    def of(cls, user: User) -> Self:
        return cls(
            **cls.fields_of(user),
            active=user.is_active,
            updated_at=user.updated_at,
            legacy_id=user.id,
            is_active=user.is_active,
            openid_bound=user.openid is not None,
        )


class LoginOut(BaseModel):
    token: str = Field(description="staff 令牌：Authorization: Bearer <token>")
    access_token: str = Field(description="同 token（原系统的字段名）")
    expires_in: int = Field(serialization_alias="expiresIn", description="有效期，秒")
    user: UserOut


class MiniprogramLoginOut(BaseModel):
    access_token: str = Field(description="staff 令牌：Authorization: Bearer <access_token>")
    user: StaffUserOut
    openid: str = Field(description="本次 wx.login 的 openid（调用者自己的）")


# -- the staff accounts API (/api/users) -------------------------------------------------------

# What an admin may give as a role: the original's codes, or ours (`advisor` is `employee`).
ROLE_INPUTS: dict[str, Role] = {code: role for role, code in WIRE_ROLES.items()} | {
    role.value: role for role in Role
}
RoleInput = Literal["admin", "manager", "employee", "advisor"]
WireRole = Literal["admin", "manager", "employee"]
UserId = Annotated[str, Path(pattern=OBJECT_ID_PATTERN.pattern, description="员工 _id")]
PASSWORD_MIN = 8


class UserStatus(StrEnum):
    active = "active"
    inactive = "inactive"


# A request body's shape: unknown keys refused, text stripped.
class _AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserCreateIn(_AccountIn):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=PASSWORD_MIN, max_length=128, description="至少 8 个字符")
    name: str = Field(min_length=1, max_length=64)
    role: RoleInput = Field(description="employee（即 advisor）、manager 或 admin")
    phone: str | None = Field(
        None, max_length=32, description="中国大陆手机号，可带 +86、空格或横线"
    )
    department: str | None = Field(None, max_length=64)


class UserUpdateIn(_AccountIn):
    """What is given changes; an empty or null phone or department clears it."""

    name: str | None = Field(None, min_length=1, max_length=64)
    phone: str | None = Field(None, max_length=32)
    department: str | None = Field(None, max_length=64)
    role: RoleInput | None = None


class PasswordResetIn(_AccountIn):
    # Not stripped: a password is what was typed.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    password: str = Field(min_length=PASSWORD_MIN, max_length=128, description="至少 8 个字符")


class StaffAccountOut(BaseModel):
    """A staff account as the admin's staff list shows it: never an openid or a hash, only
    whether a WeChat is bound."""

    model_config = ConfigDict(
        populate_by_name=True, json_schema_serialization_defaults_required=True
    )

    id: str = Field(serialization_alias="_id", description="员工 _id")
    username: str
    name: str
    phone: str | None
    role: WireRole = Field(description="角色代码：admin、manager、employee")
    role_label: str = Field(serialization_alias="roleLabel", description="角色中文名")
    department: str | None
    status: UserStatus = Field(description="active 启用，inactive 已停用")
    wechat_bound: bool = Field(serialization_alias="wechatBound", description="已绑定小程序微信")
    wechat_status: Literal["已绑定", "未绑定"] = Field(serialization_alias="wechatStatus")
    created_at: datetime = Field(serialization_alias="createdAt")
    updated_at: datetime = Field(serialization_alias="updatedAt")

    @classmethod
    def of(cls, user: User) -> Self:
        role = wire_role(user.role)
        bound = user.openid is not None
        return cls(
            id=user.id,
            username=user.username,
            name=user.name,
            phone=user.phone,
            role=role,
            role_label=ROLE_LABELS[role],
            department=user.department,
            status=UserStatus.active if user.is_active else UserStatus.inactive,
            wechat_bound=bound,
            wechat_status="已绑定" if bound else "未绑定",
            created_at=user.created_at,
            updated_at=user.updated_at,
        )
