"""Customers (leads), what they did in the mini program, follow-ups and assignment history."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wxcrm.core.models import Base, IdMixin, IdType, TimestampMixin, utcnow


class Customer(IdMixin, TimestampMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_owner_created", "owner_id", "created_at"),
        Index("ix_customers_pool_entered", "pool_entered_at"),
        # The list's default order (newest first, id breaking ties): pages without a sort.
        # The searched columns ride along because SQLite walks this index for searches too:
        # it then tests them in the index rather than fetching every row it passes. The
        # dashboard's columns too: its counts of a period's new customers by owner, status,
        # level and source then read this index alone (90 -> 35 ms for 30 days of 100,000).
        Index(
            "ix_customers_created",
            *("created_at", "id", "name", "phone", "customer_no", "wechat_id"),
            *("owner_id", "contract_status", "lead_level", "lead_source", "transfer_count"),
        ),
        # The status filter: its count reads only this index, its page no other rows.
        Index("ix_customers_status_created", "contract_status", "created_at", "id"),
        # PostgreSQL: trigram indexes serve a contains-search of three characters or more
        # (core.db.ContainsIgnoringCase) in the searched columns.
        *(
            Index(
                f"ix_customers_{column}_trgm",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            ).ddl_if(dialect="postgresql")
            for column in ("name", "phone", "wechat_id", "customer_no")
        ),
    )

    # The business number shown to staff: "CUS" + 11 digits.
    customer_no: Mapped[str] = mapped_column(String(14), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    # Normalised mainland mobile number; the unique index is what dedupes leads. A customer
    # reached only on WeChat has no phone and a `wechat_id` instead (one of them is required).
    phone: Mapped[str | None] = mapped_column(String(11), unique=True)
    phone_verified: Mapped[bool] = mapped_column(default=False)
    wechat_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The mini-program user whose action made this lead: who may see it in the mini program
    # as theirs. Never shown to staff.
    openid: Mapped[str | None] = mapped_column(String(64), index=True)
    id_card_number: Mapped[str | None] = mapped_column(String(32))
    lead_source: Mapped[str] = mapped_column(String(32), default="其他")
    service_category: Mapped[str | None] = mapped_column(String(32))
    contract_status: Mapped[str] = mapped_column(String(16), default="待定")
    lead_level: Mapped[str | None] = mapped_column(String(8))
    address: Mapped[str | None] = mapped_column(String(255))
    area: Mapped[str | None] = mapped_column(String(64))
    remark: Mapped[str | None] = mapped_column(Text)

    # The 家政 needs (staff-api §6.1): what the family wants and can pay.
    salary_budget: Mapped[int | None]  # yuan a month
    expected_start_date: Mapped[date | None]  # 期望上户日期
    expected_delivery_date: Mapped[date | None]  # 预产期
    home_area: Mapped[int | None]  # m²
    family_size: Mapped[int | None]
    rest_schedule: Mapped[str | None] = mapped_column(String(8))
    service_days: Mapped[int | None]
    age_requirement: Mapped[str | None] = mapped_column(String(64))
    gender_requirement: Mapped[str | None] = mapped_column(String(16))
    origin_requirement: Mapped[str | None] = mapped_column(String(64))
    education_requirement: Mapped[str | None] = mapped_column(String(16))
    deal_amount: Mapped[float | None] = mapped_column(Numeric(12, 2, asdecimal=False))
    # The mini program's older free-text need card, kept as typed (needs.py maps them).
    need_order_type: Mapped[str | None] = mapped_column(String(64))
    need_working_hours: Mapped[str | None] = mapped_column(String(255))
    need_salary: Mapped[str | None] = mapped_column(String(255))
    need_rest_time: Mapped[str | None] = mapped_column(String(255))
    need_family_members: Mapped[str | None] = mapped_column(String(255))
    need_service_address: Mapped[str | None] = mapped_column(String(255))
    need_house_area: Mapped[str | None] = mapped_column(String(255))
    need_work_content: Mapped[str | None] = mapped_column(Text)
    need_remarks: Mapped[str | None] = mapped_column(Text)
    need_service_period: Mapped[str | None] = mapped_column(String(255))
    need_onboarding_time: Mapped[str | None] = mapped_column(String(255))

    is_frozen: Mapped[bool] = mapped_column(default=False)
    frozen_at: Mapped[datetime | None]
    frozen_by_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    frozen_reason: Mapped[str | None] = mapped_column(String(200))

    owner_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    assigned_at: Mapped[datetime | None]
    assigned_by_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    assignment_reason: Mapped[str | None] = mapped_column(String(200))
    created_by_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    last_updated_by_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    # Set while the customer sits in the public pool, with who held it last (cooling period).
    pool_entered_at: Mapped[datetime | None]
    pool_entry_reason: Mapped[str | None] = mapped_column(String(200))
    previous_owner_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    # Times an advisor claimed it from the pool, and times the system took it back (流转).
    claim_count: Mapped[int] = mapped_column(default=0, server_default="0")
    transfer_count: Mapped[int] = mapped_column(default=0, server_default="0")
    last_transferred_at: Mapped[datetime | None]
    last_follow_up_at: Mapped[datetime | None] = mapped_column(index=True)
    last_follow_up_by_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    # When the contract status last became 已签约: the day's signed count.
    signed_at: Mapped[datetime | None] = mapped_column(index=True)


class CustomerAction(IdMixin, Base):
    """One thing a customer did in the mini program (view a resume, contact, book)."""

    __tablename__ = "customer_actions"
    __table_args__ = (
        Index("ix_customer_actions_advisor_created", "advisor_id", "created_at"),
        Index("ix_customer_actions_customer_created", "customer_record_id", "created_at"),
    )

    openid: Mapped[str] = mapped_column(String(64), index=True)
    advisor_id: Mapped[str] = mapped_column(IdType, ForeignKey("users.id"))
    action_type: Mapped[str] = mapped_column(String(32))
    action_data: Mapped[dict[str, Any]]
    customer_record_id: Mapped[str | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="SET NULL")
    )
    resume_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    customer_info: Mapped[dict[str, Any] | None]
    client_timestamp: Mapped[str | None] = mapped_column(String(64))
    notified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FollowUp(IdMixin, Base):
    """跟进记录: who contacted the customer, how, what was said, and when to call next."""

    __tablename__ = "follow_ups"
    __table_args__ = (Index("ix_follow_ups_customer_created", "customer_id", "created_at"),)

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(IdType, ForeignKey("users.id"))
    method: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    next_follow_up_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AssignmentHistory(IdMixin, Base):
    """Every change of a customer's owner: assignments, claims, releases, recycling."""

    __tablename__ = "assignment_history"
    __table_args__ = (Index("ix_assignment_history_customer_created", "customer_id", "created_at"),)

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"))
    from_user_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    to_user_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"), index=True)
    by_user_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(String(200))
    # How it happened: console, miniprogram, batch, pool_assign, claim, release, auto_recycle.
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FreezeHistory(IdMixin, Base):
    """Every freeze and unfreeze of a customer, with who did it and why (the timeline)."""

    __tablename__ = "freeze_history"
    __table_args__ = (Index("ix_freeze_history_customer_created", "customer_id", "created_at"),)

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"))
    by_user_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("users.id"))
    frozen: Mapped[bool]
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
