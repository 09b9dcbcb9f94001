"""The household-fields migration (bd9b90743cfb) on rows the older schema really holds: lead
openids out of `wechat_id`, blank and duplicate WeChat ids, staff phones in many spellings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import BACKENDS
from tests.live import own_database
from wxcrm.core.db import create_engine
from wxcrm.core.ids import new_id
from wxcrm.core.migrations import alembic_config, migrate
from wxcrm.core.models import UTCDateTime

BEFORE = "b7e1c0a9d2f4"
UNDER_TEST = "bd9b90743cfb"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
DUPLICATE_NOTE = "（原微信号 wxid_zhang 与其他客户重复，已清空）"
LEAD_OPENID = "oAbCdEfGhIjKlMnOpQrStUvWx01"
TWICE_OPENID = "oAbCdEfGhIjKlMnOpQrStUvWx02"


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database of this test's own."""
    async with own_database(request.param, tmp_path) as url:
        engine = create_engine(url)
        yield engine
        await engine.dispose()


async def _alembic(engine: AsyncEngine, step: str, revision: str) -> None:
    """`alembic upgrade|downgrade revision`, committed.

    On SQLite with foreign keys off: alembic rebuilds a table to alter it (copy, drop,
    rename), and with them on, dropping `users` or `customers` fails on (or cascades to)
    the rows pointing at them. The pragma is ignored inside a transaction, so it goes to
    the driver before SQLAlchemy begins one; `wxcrm.core.migrations.migrate` does not do
    this yet (see test_migrate_keeps_the_rows_pointing_at_rebuilt_tables)."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, step)(config, revision)
        if connection.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []

    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            await connection.run_sync(run)
            await connection.commit()
        finally:
            if sqlite:
                await connection.invalidate()  # never pooled without its foreign keys


def _insert(connection: Connection, table: str, **values: Any) -> str:
    """One row in plain SQL, as the older schema stored it; its id."""
    values = {"id": new_id(), **values}
    statement = sa.text(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(f':{k}' for k in values)})"
    ).bindparams(*(sa.bindparam(k, type_=UTCDateTime()) for k in values if k.endswith("_at")))
    connection.execute(statement, values)
    return str(values["id"])


def _user(
    connection: Connection, username: str, phone: str | None, minute: int, *, active: bool = True
) -> str:
    at = T0 + timedelta(minutes=minute)
    return _insert(
        connection, "users", username=username, password_hash="$argon2id$v=19$not-a-real-hash",
        name=username, role="advisor", is_active=active, phone=phone, openid=None,
        created_at=at, updated_at=at,
    )  # fmt: skip


def _customer(
    connection: Connection, phone: str, wechat_id: str | None, minute: int, remark: str | None
) -> str:
    at = T0 + timedelta(days=1, minutes=minute)
    return _insert(
        connection, "customers", customer_no=f"CUS{phone}", name=f"客户{phone[-4:]}",
        phone=phone, phone_verified=False, wechat_id=wechat_id, lead_source="其他",
        contract_status="待定", remark=remark, is_frozen=False, created_at=at, updated_at=at,
    )  # fmt: skip


def _old_rows(connection: Connection) -> dict[str, str]:
    """What a database at b7e1c0a9d2f4 holds; the ids by name."""
    ids = {
        "wang": _user(connection, "wang", "138 0013 8000", 1),
        "li": _user(connection, "li", "+86 138-0013-8000", 2),  # wang's number
        "zhao": _user(connection, "zhao", "8613900001111", 3),
        "sun": _user(connection, "sun", "010-6552 1234", 4),  # a landline
        "zhou": _user(connection, "zhou", "  ", 5),
        "chen": _user(connection, "chen", "13600136000", 6),
        "wu": _user(connection, "wu", "（１３５）００１３ ５０００", 7),  # typed full-width
        # The oldest holder of a number has left: the account in use keeps it.
        "qian_old": _user(connection, "qian_old", "13700137000", 0, active=False),
        "qian": _user(connection, "qian", "(137)0013 7000", 8),
    }
    # Leads a mini-program action made: the actor's openid in wechat_id. One WeChat user
    # made two leads (two phones), which is no duplicate WeChat id.
    for name, phone, openid in (
        ("lead", "13911110001", LEAD_OPENID),
        ("twice_a", "13911110002", TWICE_OPENID),
        ("twice_b", "13911110003", TWICE_OPENID),
    ):
        ids[name] = _customer(connection, phone, openid, 0, "小程序线索")
        _insert(
            connection, "customer_actions", openid=openid, advisor_id=ids["wang"],
            action_type="call", action_data="{}", customer_record_id=ids[name],
            notified=True, created_at=T0 + timedelta(days=1),
        )  # fmt: skip
    # WeChat ids staff typed: one shared by three customers (once with stray spaces).
    ids["dup_oldest"] = _customer(connection, "13922220001", "wxid_zhang", 1, "老客户")
    ids["dup_spaced"] = _customer(connection, "13922220002", " wxid_zhang ", 2, None)
    ids["dup_newest"] = _customer(connection, "13922220003", "wxid_zhang", 3, "转介绍")
    ids["own_wechat"] = _customer(connection, "13922220004", "zhang_san_88", 4, "有微信")
    # The old console's `wechatId: ""`, and what people typed for nothing.
    for n, blank in enumerate(("", "", "  ", "\u3000", "\t")):
        ids[f"blank_{n}"] = _customer(connection, f"1393333000{n}", blank, 5 + n, f"备注{n}")
    ids["no_wechat"] = _customer(connection, "13944440001", None, 10, None)
    # What points at the tables the migration rebuilds.
    at = T0 + timedelta(days=2)
    for customer in ("lead", "dup_spaced"):
        _insert(
            connection, "follow_ups", customer_id=ids[customer], user_id=ids["li"],
            method="phone", content="电话回访", created_at=at,
        )  # fmt: skip
        _insert(
            connection, "assignment_history", customer_id=ids[customer], to_user_id=ids["li"],
            by_user_id=ids["wang"], channel="manual", created_at=at,
        )  # fmt: skip
    return ids


async def _rows(engine: AsyncEngine, query: str) -> dict[str, Any]:
    """The first column of each row -> the rest of it."""
    async with engine.connect() as connection:
        return {row[0]: row[1:] for row in (await connection.execute(sa.text(query))).all()}


async def _with_old_rows(engine: AsyncEngine) -> dict[str, str]:
    """The ids of the rows put in the database at b7e1c0a9d2f4, by name."""
    await _alembic(engine, "upgrade", BEFORE)
    async with engine.begin() as connection:
        ids = await connection.run_sync(_old_rows)
    return {id_: name for name, id_ in ids.items()}


async def test_upgrade_cleans_old_rows_and_downgrade_gives_leads_their_openids_back(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    names = await _with_old_rows(engine)

    with caplog.at_level(logging.INFO):
        await _alembic(engine, "upgrade", UNDER_TEST)

    customers = {
        names[id_]: row
        for id_, row in (
            await _rows(engine, "SELECT id, wechat_id, openid, remark FROM customers")
        ).items()
    }
    assert customers["lead"] == (None, LEAD_OPENID, "小程序线索")
    assert customers["twice_a"] == (None, TWICE_OPENID, "小程序线索")
    assert customers["twice_b"] == (None, TWICE_OPENID, "小程序线索")
    assert customers["dup_oldest"] == ("wxid_zhang", None, "老客户")
    assert customers["dup_spaced"] == (None, None, DUPLICATE_NOTE)
    assert customers["dup_newest"] == (None, None, f"转介绍{DUPLICATE_NOTE}")
    assert customers["own_wechat"] == ("zhang_san_88", None, "有微信")
    for n in range(5):
        assert customers[f"blank_{n}"] == (None, None, f"备注{n}")
    assert customers["no_wechat"] == (None, None, None)

    users = await _rows(engine, "SELECT username, phone FROM users")
    assert users == {
        "wang": ("13800138000",),
        "li": (None,),
        "zhao": ("13900001111",),
        "sun": (None,),
        "zhou": (None,),
        "chen": ("13600136000",),
        "wu": ("13500135000",),
        "qian_old": (None,),
        "qian": ("13700137000",),
    }

    # One line per account that lost its phone, naming it and why; a blank was no phone.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    li, qian_old, sun = sorted(line for line in warnings if line.startswith("staff account"))
    assert "staff account li: phone 138****8000 is already account wang's" in li
    assert "`wxcrm users update li --phone P`" in li
    assert "staff account qian_old: phone 137****7000 is already account qian's" in qian_old
    assert "staff account sun: phone 010****1234 is not a mainland mobile" in sun
    assert "`wxcrm users update sun --phone P`" in sun
    assert "2 customers lost a WeChat id another customer has" in " ".join(warnings)
    for secret in (LEAD_OPENID, TWICE_OPENID, "13800138000", "65521234", "argon2"):
        assert secret not in caplog.text

    # The older schema cannot hold a customer with no phone: downgrading refuses, changing
    # nothing, until there is none.
    async with engine.begin() as connection:
        _insert_wechat_only = sa.text(
            "INSERT INTO customers (id, customer_no, name, phone, phone_verified, wechat_id,"
            " lead_source, contract_status, is_frozen, claim_count, transfer_count, created_at,"
            " updated_at) VALUES (:id, 'CUS00000000001', '微信客户', NULL, false, 'wx_only',"
            " '其他', '待定', false, 0, 0, :at, :at)"
        ).bindparams(sa.bindparam("at", type_=UTCDateTime()))
        await connection.execute(_insert_wechat_only, {"id": new_id(), "at": T0})
    with pytest.raises(RuntimeError, match="1 customers have a WeChat id and no phone"):
        await _alembic(engine, "downgrade", BEFORE)
    assert list(await _rows(engine, "SELECT version_num, 1 FROM alembic_version")) == [UNDER_TEST]
    async with engine.begin() as connection:
        await connection.execute(sa.text("DELETE FROM customers WHERE phone IS NULL"))

    await _alembic(engine, "downgrade", BEFORE)

    assert list(await _rows(engine, "SELECT version_num, 1 FROM alembic_version")) == [BEFORE]
    wechat_ids = {
        names[id_]: wechat_id
        for id_, (wechat_id,) in (
            await _rows(engine, "SELECT id, wechat_id FROM customers")
        ).items()
    }
    assert wechat_ids["lead"] == LEAD_OPENID
    assert wechat_ids["twice_a"] == wechat_ids["twice_b"] == TWICE_OPENID
    assert wechat_ids["dup_oldest"] == "wxid_zhang"
    assert wechat_ids["dup_spaced"] is None
    assert wechat_ids["blank_0"] is None


async def test_migrate_keeps_the_rows_pointing_at_rebuilt_tables(
    engine: AsyncEngine,
) -> None:
    await _with_old_rows(engine)

    await migrate(engine)  # what `wxcrm migrate` and a starting server run

    counts = await _rows(
        engine,
        "SELECT 'customers', COUNT(*) FROM customers UNION ALL"
        " SELECT 'follow_ups', COUNT(*) FROM follow_ups UNION ALL"
        " SELECT 'assignment_history', COUNT(*) FROM assignment_history UNION ALL"
        " SELECT 'linked actions', COUNT(customer_record_id) FROM customer_actions",
    )
    assert counts == {
        "customers": (13,),
        "follow_ups": (2,),
        "assignment_history": (2,),
        "linked actions": (3,),
    }
