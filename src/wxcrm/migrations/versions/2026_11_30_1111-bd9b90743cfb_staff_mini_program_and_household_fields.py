"""staff mini program and household fields

The 家政 record (needs, deal, need cards, pool and freeze details), idempotency keys, staff
phones and departments. A lead's openid leaves `wechat_id` for a column of its own: it was
kept there, and a WeChat id staff type is another thing (now unique, as phones are).

Revision ID: bd9b90743cfb
Revises: b7e1c0a9d2f4
Create Date: 2026-11-30 11:11:41.510534
"""

import logging
import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "bd9b90743cfb"
down_revision: str | None = "b7e1c0a9d2f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Alembic's own logger: `wxcrm migrate` (and a server migrating at start-up) shows it.
log = logging.getLogger("alembic.runtime.migration")


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

    if op.get_bind().dialect.name == "postgresql":
        # Tables never analysed (a restore, a bulk import) and just altered look empty to
        # the planner: the steps below then scan all customers once per row they touch.
        op.execute("ANALYZE customers, customer_actions")
    _trim_wechat_ids()
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


# What the old console left around a WeChat id (the app strips what staff type now): tabs,
# line breaks and the full-width space of Chinese input methods as well as plain spaces.
_BLANKS = " \t\r\n\u3000"


def _trim_wechat_ids() -> None:
    """The old console stored an empty WeChat id as '' (or spaces): that is no WeChat id, and
    not one shared by every such customer. Others lose surrounding blanks, as the app's input
    does, so that ' abc' and 'abc' are seen as the same id."""
    bind = op.get_bind()
    trim = "btrim" if bind.dialect.name == "postgresql" else "trim"
    bind.execute(
        sa.text(
            f"UPDATE customers SET wechat_id = NULLIF({trim}(wechat_id, :blanks), '')"
            f" WHERE wechat_id <> {trim}(wechat_id, :blanks) OR wechat_id = ''"
        ),
        {"blanks": _BLANKS},
    )


def _move_lead_openids() -> None:
    # Leads made by a mini-program action kept the actor's openid as their WeChat id.
    op.execute(
        "UPDATE customers SET openid = wechat_id, wechat_id = NULL"
        " WHERE wechat_id IS NOT NULL AND EXISTS"
        " (SELECT 1 FROM customer_actions WHERE customer_actions.openid = customers.wechat_id)"
    )


def _clear_duplicate_wechat_ids() -> None:
    """WeChat ids become unique: the oldest customer keeps a shared one; the others lose it,
    and their remark says which it was."""
    # One statement and one sorted pass over the table: a scan per shared value, or an
    # UPDATE per customer, took minutes with 200,000 customers on PostgreSQL.
    cleared = (
        op.get_bind()
        .execute(
            sa.text(
                "UPDATE customers SET wechat_id = NULL, remark = COALESCE(remark, '')"
                " || '（原微信号 ' || wechat_id || ' 与其他客户重复，已清空）'"
                " WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER"
                " (PARTITION BY wechat_id ORDER BY created_at, id) AS place"
                " FROM customers WHERE wechat_id IS NOT NULL) AS ranked WHERE place > 1)"
            )
        )
        .rowcount
    )
    if cleared:
        log.warning(
            "%d customers lost a WeChat id another customer has (each remark says which)",
            cleared,
        )


def _normalise_staff_phones() -> None:
    """Staff phones become normalised mainland mobiles, one account each: a number that is
    not one, or that another account keeps (an active one before an inactive, then the
    oldest), is cleared, and each such account is named in the log: it cannot log in to the
    staff mini program until `wxcrm users update` gives it a phone."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, username, phone FROM users WHERE phone IS NOT NULL"
            " ORDER BY is_active DESC, created_at, id"
        )
    ).all()
    holders: dict[str, str] = {}
    changed: list[dict[str, str | None]] = []
    for row in rows:
        # Full-width digits and brackets from Chinese input methods are the plain ones.
        typed = unicodedata.normalize("NFKC", row.phone)
        phone = _mainland_mobile(typed)
        if phone is not None and phone in holders:
            log.warning(
                "staff account %s: phone %s is already account %s's, so it was cleared;"
                " it cannot log in to the staff mini program until"
                " `wxcrm users update %s --phone P`",
                row.username, _masked(phone), holders[phone], row.username,
            )  # fmt: skip
            phone = None
        elif phone is not None:
            holders[phone] = row.username
        elif typed.strip():
            log.warning(
                "staff account %s: phone %s is not a mainland mobile, so it was cleared;"
                " it cannot log in to the staff mini program until"
                " `wxcrm users update %s --phone P`",
                row.username, _masked(typed), row.username,
            )  # fmt: skip
        if phone != row.phone:
            changed.append({"id": row.id, "phone": phone})
    if changed:
        bind.execute(sa.text("UPDATE users SET phone = :phone WHERE id = :id"), changed)


def _mainland_mobile(typed: str) -> str | None:
    # wxcrm.core.phones.normalize_phone as of this revision (revisions never import wxcrm),
    # with ASCII digits only: `\d` would take other scripts' digits too.
    digits = re.sub(r"[\s\-()]", "", typed)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits if re.fullmatch(r"1[3-9][0-9]{9}", digits) else None


def _masked(typed: str) -> str:
    """Enough of a number for the operator to recognise it, not to dial it."""
    digits = re.sub(r"[^0-9]", "", typed)
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 8 else "****"


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
