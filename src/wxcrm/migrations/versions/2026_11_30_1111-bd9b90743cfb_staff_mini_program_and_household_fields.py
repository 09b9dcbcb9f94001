"""staff mini program and household fields

The 家政 record (needs, deal, need cards, pool and freeze details), idempotency keys, staff
phones and departments. A lead's openid leaves `wechat_id` for a column of its own: it was
kept there, and a WeChat id staff type is another thing (now unique, as phones are).

Revision ID: bd9b90743cfb
Revises: b7e1c0a9d2f4
Create Date: 2026-11-30 11:11:41.510534
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "bd9b90743cfb"
down_revision: str | None = "b7e1c0a9d2f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotent_answers",
        sa.Column("scope", sa.String(length=96), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("body", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotent_answers")),
    )
    with op.batch_alter_table("idempotent_answers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotent_answers_created_at"), ["created_at"], unique=False
        )

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("openid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("id_card_number", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("area", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("salary_budget", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("expected_start_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("expected_delivery_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("home_area", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("family_size", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rest_schedule", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("service_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("age_requirement", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("gender_requirement", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("origin_requirement", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("education_requirement", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column(
                "deal_amount", sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=True
            )
        )
        batch_op.add_column(sa.Column("need_order_type", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("need_working_hours", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("need_salary", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("need_rest_time", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("need_family_members", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("need_service_address", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("need_house_area", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("need_work_content", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("need_remarks", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("need_service_period", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("need_onboarding_time", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("frozen_by_id", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("frozen_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("assignment_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("last_updated_by_id", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("pool_entry_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("claim_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("transfer_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("last_transferred_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("last_follow_up_by_id", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("department", sa.String(length=64), nullable=True))

    _move_lead_openids()
    _clear_duplicate_wechat_ids()
    _normalise_staff_phones()

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.alter_column("phone", existing_type=sa.VARCHAR(length=11), nullable=True)
        batch_op.drop_index(batch_op.f("ix_customers_wechat_id"))
        batch_op.create_index(batch_op.f("ix_customers_openid"), ["openid"], unique=False)
        batch_op.create_index(batch_op.f("ix_customers_signed_at"), ["signed_at"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_customers_wechat_id"), ["wechat_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_customers_frozen_by_id_users"), "users", ["frozen_by_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_customers_last_follow_up_by_id_users"),
            "users",
            ["last_follow_up_by_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_customers_last_updated_by_id_users"),
            "users",
            ["last_updated_by_id"],
            ["id"],
        )

    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_follow_ups_next_follow_up_at"), ["next_follow_up_at"], unique=False
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column(
            "phone",
            existing_type=sa.VARCHAR(length=20),
            type_=sa.String(length=11),
            existing_nullable=True,
        )
        batch_op.create_unique_constraint(batch_op.f("uq_users_phone"), ["phone"])


def _move_lead_openids() -> None:
    # Leads made by a mini-program action kept the actor's openid as their WeChat id.
    op.execute(
        "UPDATE customers SET openid = wechat_id, wechat_id = NULL"
        " WHERE wechat_id IN (SELECT openid FROM customer_actions)"
    )


def _clear_duplicate_wechat_ids() -> None:
    """WeChat ids become unique: the oldest customer keeps a shared one; the others lose it,
    and their remark says which it was."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, wechat_id, remark FROM customers WHERE wechat_id IN"
            " (SELECT wechat_id FROM customers WHERE wechat_id IS NOT NULL"
            " GROUP BY wechat_id HAVING COUNT(*) > 1)"
            " ORDER BY wechat_id, created_at, id"
        )
    ).all()
    kept: set[str] = set()
    for row in rows:
        if row.wechat_id not in kept:
            kept.add(row.wechat_id)
            continue
        note = f"（原微信号 {row.wechat_id} 与其他客户重复，已清空）"
        bind.execute(
            sa.text("UPDATE customers SET wechat_id = NULL, remark = :remark WHERE id = :id"),
            {"id": row.id, "remark": f"{row.remark or ''}{note}"},
        )


def _normalise_staff_phones() -> None:
    """Staff phones become normalised mainland mobiles, one account each: a number that is
    not one, or that an older account already has, is cleared (set it again with
    `wxcrm users update`)."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, phone FROM users WHERE phone IS NOT NULL ORDER BY created_at, id")
    ).all()
    taken: set[str] = set()
    for row in rows:
        digits = re.sub(r"[\s\-()（）]", "", row.phone)
        if digits.startswith("+86"):
            digits = digits[3:]
        elif digits.startswith("86") and len(digits) == 13:
            digits = digits[2:]
        phone = digits if re.fullmatch(r"1[3-9]\d{9}", digits) and digits not in taken else None
        if phone is not None:
            taken.add(phone)
        if phone != row.phone:
            bind.execute(
                sa.text("UPDATE users SET phone = :phone WHERE id = :id"),
                {"id": row.id, "phone": phone},
            )


def downgrade() -> None:
    phoneless = op.get_bind().scalar(sa.text("SELECT COUNT(*) FROM customers WHERE phone IS NULL"))
    if phoneless:
        raise RuntimeError(
            f"{phoneless} customers have a WeChat id and no phone, which the older schema cannot"
            " hold: give them phones (or delete them) before downgrading"
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_phone"), type_="unique")
        batch_op.alter_column(
            "phone",
            existing_type=sa.String(length=11),
            type_=sa.VARCHAR(length=20),
            existing_nullable=True,
        )
        batch_op.drop_column("department")

    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_follow_ups_next_follow_up_at"))

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_customers_last_updated_by_id_users"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_customers_last_follow_up_by_id_users"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_customers_frozen_by_id_users"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_customers_wechat_id"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_customers_signed_at"))
        batch_op.drop_index(batch_op.f("ix_customers_openid"))
        batch_op.create_index(batch_op.f("ix_customers_wechat_id"), ["wechat_id"], unique=False)
        batch_op.alter_column("phone", existing_type=sa.VARCHAR(length=11), nullable=False)
    # The older code finds a lead's maker by its WeChat id.
    op.execute(
        "UPDATE customers SET wechat_id = openid WHERE wechat_id IS NULL AND openid IS NOT NULL"
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("signed_at")
        batch_op.drop_column("last_follow_up_by_id")
        batch_op.drop_column("last_transferred_at")
        batch_op.drop_column("transfer_count")
        batch_op.drop_column("claim_count")
        batch_op.drop_column("pool_entry_reason")
        batch_op.drop_column("last_updated_by_id")
        batch_op.drop_column("assignment_reason")
        batch_op.drop_column("frozen_reason")
        batch_op.drop_column("frozen_by_id")
        batch_op.drop_column("frozen_at")
        batch_op.drop_column("need_onboarding_time")
        batch_op.drop_column("need_service_period")
        batch_op.drop_column("need_remarks")
        batch_op.drop_column("need_work_content")
        batch_op.drop_column("need_house_area")
        batch_op.drop_column("need_service_address")
        batch_op.drop_column("need_family_members")
        batch_op.drop_column("need_rest_time")
        batch_op.drop_column("need_salary")
        batch_op.drop_column("need_working_hours")
        batch_op.drop_column("need_order_type")
        batch_op.drop_column("deal_amount")
        batch_op.drop_column("education_requirement")
        batch_op.drop_column("origin_requirement")
        batch_op.drop_column("gender_requirement")
        batch_op.drop_column("age_requirement")
        batch_op.drop_column("service_days")
        batch_op.drop_column("rest_schedule")
        batch_op.drop_column("family_size")
        batch_op.drop_column("home_area")
        batch_op.drop_column("expected_delivery_date")
        batch_op.drop_column("expected_start_date")
        batch_op.drop_column("salary_budget")
        batch_op.drop_column("area")
        batch_op.drop_column("id_card_number")
        batch_op.drop_column("openid")

    with op.batch_alter_table("idempotent_answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotent_answers_created_at"))

    op.drop_table("idempotent_answers")
