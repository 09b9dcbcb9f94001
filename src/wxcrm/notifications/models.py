"""The outbox of WeChat notifications, its delivery attempts, and advisors' subscriptions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from wxcrm.core.models import Base, IdMixin, IdType, TimestampMixin, utcnow


class NotificationStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    skipped = "skipped"


class Notification(IdMixin, TimestampMixin, Base):
    """One message to deliver, written in the same transaction as the change behind it."""

    __tablename__ = "notifications"
    __table_args__ = (
        # The worker's claim query: pending rows that are due, oldest first.
        Index("ix_notifications_claim", "status", "scheduled_at"),
        # While a row is pending, a second event with its fold key updates it instead.
        Index(
            "uq_notifications_pending_fold_key",
            "fold_key",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_notifications_advisor_created", "advisor_id", "created_at"),
        # The console's delivery log: newest first, by day (its dates, the dashboard's today).
        Index("ix_notifications_created", "created_at", "id"),
        # Folding looks for the newest row of a key in any state: without this, every
        # customer action scanned the whole history of sent notifications.
        Index("ix_notifications_fold_key_created", "fold_key", "created_at"),
    )

    event: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    advisor_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    template_id: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]]
    fold_key: Mapped[str | None] = mapped_column(String(200))
    fold_count: Mapped[int] = mapped_column(Integer, default=1)

    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    scheduled_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The lease: which worker holds a `sending` row, and when it last said it is alive.
    locked_by: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None]
    last_errcode: Mapped[int | None]
    last_errmsg: Mapped[str | None] = mapped_column(Text)
    skip_reason: Mapped[str | None] = mapped_column(String(200))
    msgid: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    # A subscription credit was taken for the delivery under way; given back if it fails.
    credit_reserved: Mapped[bool] = mapped_column(default=False)


class NotificationAttempt(IdMixin, Base):
    __tablename__ = "notification_attempts"

    notification_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    errcode: Mapped[int | None]
    errmsg: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class AdvisorSubscription(IdMixin, Base):
    """An advisor's subscription to one template, with the sends WeChat still allows."""

    __tablename__ = "advisor_subscriptions"
    __table_args__ = (UniqueConstraint("advisor_id", "template_id"),)

    advisor_id: Mapped[str] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    template_id: Mapped[str] = mapped_column(String(128))
    openid: Mapped[str | None] = mapped_column(String(64))
    subscribed: Mapped[bool] = mapped_column(default=False)
    subscribe_time: Mapped[datetime | None]
    subscribe_data: Mapped[dict[str, Any] | None]
    # One-time subscriptions: each accept adds one send; each send spends one.
    credits: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
