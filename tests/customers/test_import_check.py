"""The import's check (what importing a file would refuse, found without writing) and the
life of a checked upload: kept, confirmed once, imported in the background whole or not at
all, its progress and result recorded, a dead import shown failed, old uploads forgotten."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_customer, make_user
from wxcrm.core.db import Database
from wxcrm.core.errors import Conflict, NotFound, ValidationFailed
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.models import Customer
from wxcrm.customers.transfer import pending
from wxcrm.customers.transfer.models import ImportStage, ImportStatus, PendingImport
from wxcrm.customers.transfer.service import check_file, import_rows, read_sheet
from wxcrm.jobs import scheduled_jobs
from wxcrm.users.models import Role, User


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


async def count(session: AsyncSession, model: type[Any] = Customer, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def committed_user(database: Database, role: Role = Role.manager) -> User:
    async with database.writer() as session:
        user = await make_user(session, role)
        await session.commit()
    return user


async def stash_file(database: Database, settings: Settings, user: User, content: bytes) -> str:
    async with database.writer() as session:
        report = await check_file(session, settings, "客户.csv", content)
        assert report.clean, report.problems
        kept = await pending.stash(session, user, "客户.csv", content, report)
        await session.commit()
    return kept.id


async def stored(database: Database, pending_id: str) -> PendingImport:
    async with database.reader() as session:
        row = await session.get(PendingImport, pending_id)
    assert row is not None
    return row


async def test_the_check_finds_what_the_import_refuses_and_writes_nothing(
    session: AsyncSession, settings: Settings
) -> None:
    await session.execute(delete(Customer))
    manager = await make_user(session, Role.manager)
    advisor = await make_user(session, Role.advisor)
    existing = await make_customer(session, phone="13900000001", wechat_id="taken_wx")
    content = csv_bytes(
        [
            ["姓名", "手机号", "微信号", "负责人", "线索来源", "薪资预算"],
            ["好的", "13800000001", "", advisor.username, "抖音", "8000"],
            ["坏手机", "12345", "", "", "", ""],
            ["重复", "13800000001", "", "", "", ""],
            ["已有", "139 0000 0001", "taken_wx", "", "", ""],
            ["", "13800000005", "", "nobody", "电视", "很多"],
        ]
    )
    report = await check_file(session, settings, "客户.csv", content)
    assert (report.rows, report.ok_rows, report.bad_rows) == (5, 1, 4)
    assert report.problem_count == len(report.problems) == 8
    assert [(p["row"], p["column"], p["message"]) for p in report.problems] == [
        (3, "手机号", "手机号格式不正确（需为中国大陆11位手机号）"),
        (4, "手机号", "手机号与第 2 行重复"),
        (5, "手机号", f"手机号已存在（客户 {existing.customer_no}）"),
        (5, "微信号", f"微信号已存在（客户 {existing.customer_no}）"),
        (6, "姓名", "姓名不能为空"),
        (6, "线索来源", report.problems[5]["message"]),
        (6, "负责人", "负责人“nobody”不是在职顾问的用户名"),
        (6, "薪资预算", report.problems[7]["message"]),
    ]
    assert report.problems[5]["message"].startswith("线索来源必须是")
    assert report.problems[7]["value"] == "很多"
    assert await count(session) == 1  # nothing written

    # The import refuses the very same problems, and writes nothing either.
    with pytest.raises(ValidationFailed) as refused:
        await import_rows(session, settings, manager, read_sheet("客户.csv", content).rows)
    assert refused.value.details == report.problems
    assert await count(session) == 1

    clean = csv_bytes([["姓名", "手机号"], ["甲", "13800000011"], ["乙", "13800000012"]])
    report = await check_file(session, settings, "ok.csv", clean)
    assert report.clean and report.problems == [] and report.ok_rows == 2
    assert await count(session) == 1


async def test_the_import_reports_its_progress_by_stage(
    session: AsyncSession, settings: Settings
) -> None:
    await session.execute(delete(Customer))
    manager = await make_user(session, Role.manager)
    rows = [["姓名", "手机号"], *[[f"客户{n}", f"1370000{n:04d}"] for n in range(1200)]]
    heard: list[tuple[ImportStage, int]] = []

    async def progress(stage: ImportStage, done: int) -> None:
        heard.append((stage, done))

    sheet = read_sheet("big.csv", csv_bytes(rows))
    assert await import_rows(session, settings, manager, sheet.rows, progress=progress) == 1200
    checking = [done for stage, done in heard if stage is ImportStage.checking]
    writing = [done for stage, done in heard if stage is ImportStage.writing]
    assert checking == [500, 1000, 1200]
    assert writing == sorted(writing) and writing[-1] == 1200 and len(writing) > 1
    assert heard.index((ImportStage.checking, 1200)) < heard.index((ImportStage.writing, 1200))


async def test_a_checked_upload_is_imported_once_by_its_uploader(
    committed: Database, settings: Settings
) -> None:
    manager = await committed_user(committed)
    other = await committed_user(committed)
    content = csv_bytes([["姓名", "手机号"], *[[f"客户{n}", f"1360000000{n}"] for n in range(3)]])
    earlier = await stash_file(committed, settings, manager, content)
    pending_id = await stash_file(committed, settings, manager, content)
    with pytest.raises(NotFound):  # the newer upload replaced the one still waiting
        await pending.current(committed, manager, earlier)
    waiting = await pending.current(committed, manager, pending_id)
    assert (waiting.status, waiting.row_count) == (ImportStatus.checked.value, 3)

    with pytest.raises(NotFound):  # another manager neither sees nor confirms it
        await pending.current(committed, other, pending_id)
    with pytest.raises(NotFound):
        await pending.confirm(committed, settings, other, pending_id)
    assert (await stored(committed, pending_id)).status == ImportStatus.checked.value

    running = await pending.confirm(committed, settings, manager, pending_id)
    with pytest.raises(Conflict):  # at once, while it runs: still once
        await pending.confirm(committed, settings, manager, pending_id)
    await running
    done = await pending.current(committed, manager, pending_id)
    assert done.status == ImportStatus.done.value
    assert (done.imported, done.message) == (3, "导入成功：共 3 个客户")
    assert done.finished_at is not None
    assert (await stored(committed, pending_id)).content is None  # the file is not kept
    with pytest.raises(Conflict):
        await pending.confirm(committed, settings, manager, pending_id)
    async with committed.reader() as session:
        assert await count(session) == 3


async def test_rows_gone_bad_since_the_check_fail_the_whole_import(
    committed: Database, settings: Settings
) -> None:
    manager = await committed_user(committed)
    content = csv_bytes([["姓名", "手机号"], ["甲", "13500000001"], ["乙", "13500000002"]])
    pending_id = await stash_file(committed, settings, manager, content)
    async with committed.writer() as session:  # someone adds one of its phones meanwhile
        taken = await make_customer(session, phone="13500000002")
        await session.commit()
    await (await pending.confirm(committed, settings, manager, pending_id))
    failed = await pending.current(committed, manager, pending_id)
    assert failed.status == ImportStatus.failed.value
    assert failed.message is not None and "未导入任何客户" in failed.message
    assert failed.problems == [
        {
            "row": 3,
            "field": "phone",
            "column": "手机号",
            "value": "13500000002",
            "message": f"手机号已存在（客户 {taken.customer_no}）",
        }
    ]
    async with committed.reader() as session:
        assert await count(session) == 1


async def test_an_import_taken_for_dead_meanwhile_imports_nothing(
    committed: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = await committed_user(committed)
    content = csv_bytes([["姓名", "手机号"], ["甲", "13400000001"]])
    pending_id = await stash_file(committed, settings, manager, content)
    real_import = pending.import_rows

    async def slow_import(*args: Any, **kwargs: Any) -> int:
        # A poll found its heartbeat too old before the rows were written.
        async with committed.writer() as session:
            await session.execute(
                update(PendingImport)
                .where(PendingImport.id == pending_id)
                .values(status=ImportStatus.failed.value, message=pending.INTERRUPTED)
            )
            await session.commit()
        return await real_import(*args, **kwargs)

    monkeypatch.setattr(pending, "import_rows", slow_import)
    await (await pending.confirm(committed, settings, manager, pending_id))
    assert (await stored(committed, pending_id)).status == ImportStatus.failed.value
    async with committed.reader() as session:
        assert await count(session) == 0


async def test_a_dead_import_shows_failed_and_old_uploads_are_forgotten(
    committed: Database, settings: Settings
) -> None:
    manager = await committed_user(committed)
    now = utcnow()
    async with committed.writer() as session:
        rows = [
            PendingImport(
                created_by_id=manager.id,
                filename=f"{n}.csv",
                row_count=10,
                status=ImportStatus.importing.value,
                stage=ImportStage.writing.value,
                rows_done=5,
                heartbeat_at=now - beat,
                created_at=now - timedelta(minutes=5),
            )
            for n, beat in enumerate([timedelta(seconds=5), pending.STALE_AFTER * 2])
        ]
        session.add_all(rows)
        await session.commit()
    alive, dead = rows
    assert (await pending.current(committed, manager, alive.id)).status == "importing"
    shown = await pending.current(committed, manager, dead.id)
    assert (shown.status, shown.message) == (ImportStatus.failed.value, pending.INTERRUPTED)

    [job] = [job for job in scheduled_jobs() if job.name == "forget_old_imports"]
    assert await pending.forget_old_imports(committed, settings) == 0  # not a day old yet
    assert await job.run(committed, settings) == 0
    later = now + pending.KEEP_FOR
    assert await pending.forget_old_imports(committed, settings, later) == 2
    async with committed.reader() as session:
        assert await count(session, PendingImport) == 0
