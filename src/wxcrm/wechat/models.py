"""The access token shared by every process through the database."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wxcrm.core.models import Base


class WeChatToken(Base):
    __tablename__ = "wechat_tokens"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # WeChat asks for at least 512 characters of room.
    access_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    refreshed_at: Mapped[datetime | None]
    # Cross-process single flight: the refresher holds the lease until it stores its result.
    refresh_owner: Mapped[str | None] = mapped_column(String(64))
    refresh_lease_until: Mapped[datetime | None]
    # force_refresh is limited by WeChat to 20 a day, 30 s apart.
    last_force_refresh_at: Mapped[datetime | None]
    force_refresh_day: Mapped[date | None] = mapped_column(Date)
    force_refresh_count: Mapped[int] = mapped_column(Integer, default=0)
