"""Wire shapes of staff accounts and login."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from wxcrm.users.models import Role


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)
    # A wx.login code: an advisor logging in from the mini program binds its openid.
    code: str | None = Field(None, min_length=1, max_length=128)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: str = Field(serialization_alias="_id")
    username: str
    name: str
    role: Role
    is_active: bool = Field(serialization_alias="isActive")
    phone: str | None
    openid_bound: bool = Field(False, serialization_alias="openidBound")
    created_at: datetime = Field(serialization_alias="createdAt")
