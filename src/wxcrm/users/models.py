"""Staff accounts: admins, managers and advisors."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from wxcrm.core.models import Base, IdMixin, TimestampMixin


class Role(StrEnum):
    admin = "admin"
    manager = "manager"
    advisor = "advisor"


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'manager', 'advisor')", name="role"),)

    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(default=True)
    # Normalised mainland mobile: how the staff mini program finds the account at login.
    phone: Mapped[str | None] = mapped_column(String(11), unique=True)
    department: Mapped[str | None] = mapped_column(String(64))
    # A token issued before this was for the old password: refused (users/deps.py).
    password_changed_at: Mapped[datetime | None]
    # The staff mini-program openid: bound by the first phone login (later ones must come
    # from it) or moved by a password login with a wx.login code; one account per openid.
    openid: Mapped[str | None] = mapped_column(String(64), unique=True)

    @property
    def is_staff_manager(self) -> bool:
        return self.role in (Role.admin, Role.manager)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin


class SignedOutToken(Base):
    """A staff token whose holder signed out: refused until it would have expired anyway.
    Kept by its digest, never the token itself."""

    __tablename__ = "signed_out_tokens"
    __table_args__ = (Index("ix_signed_out_tokens_expires_at", "expires_at"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]
