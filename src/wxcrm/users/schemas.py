"""Wire shapes of staff accounts and login."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from wxcrm.users.models import Role, User


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)
    # A wx.login code: an advisor logging in from the mini program binds its openid.
    code: str | None = Field(None, min_length=1, max_length=128)


class UserOut(BaseModel):
    """A staff account as the API shows it (never its password hash or openid)."""

    model_config = ConfigDict(
        from_attributes=True,
        populate_by_name=True,
        json_schema_serialization_defaults_required=True,
    )

    id: str = Field(serialization_alias="_id")
    username: str
    name: str
    role: Role
    is_active: bool = Field(serialization_alias="isActive")
    phone: str | None
    openid_bound: bool = Field(False, serialization_alias="openidBound")
    created_at: datetime = Field(serialization_alias="createdAt")

    @classmethod
    def of(cls, user: User) -> Self:
        out = cls.model_validate(user)
        out.openid_bound = user.openid is not None
        return out


class LoginOut(BaseModel):
    token: str = Field(description="staff 令牌：Authorization: Bearer <token>")
    expires_in: int = Field(serialization_alias="expiresIn", description="有效期，秒")
    user: UserOut
