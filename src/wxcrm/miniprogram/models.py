"""What the back end keeps of mini-program users, and the WeChat pushes it has taken."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from wxcrm.core.models import Base, IdMixin, utcnow


class MiniProgramUser(Base):
    """A customer of the mini program, known by openid from its first login."""

    __tablename__ = "miniprogram_users"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    unionid: Mapped[str | None] = mapped_column(String(64))
    # A number WeChat verified for this user (getuserphonenumber); leads made from it
    # are marked verified.
    verified_phone: Mapped[str | None] = mapped_column(String(11))
    phone_verified_at: Mapped[datetime | None]
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime] = mapped_column(default=utcnow)


class WeChatPushEvent(IdMixin, Base):
    """A message WeChat pushed to us and we applied. WeChat retries a push it thinks
    unanswered, so each is applied once, by its key."""

    __tablename__ = "wechat_push_events"

    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class WeChatPushNonce(Base):
    """The (timestamp, nonce) of a push we took. In plain-text mode WeChat signs these and
    not the body, so each pair is taken once, whatever body comes with it again.

    Rows are kept for twice the signature window (a margin for processes whose clocks
    disagree): each push taken purges the older ones (push_service.claim_nonce).
    """

    __tablename__ = "wechat_push_nonces"

    # The primary key is the uniqueness a replay meets; timestamp first, for the purge.
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
