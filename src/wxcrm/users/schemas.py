"""Wire shapes of staff accounts and login."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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
