"""A worker whose database refuses: it waits longer after each failure, logs one traceback
rather than one a turn, and writes the outcomes it holds once the database is back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy.exc import OperationalError

from tests.factories import committed_advisor
from tests.notifications.conftest import grant_at_wechat, queue_committed
from tests.notifications.test_worker import rows, until
from wxcrm.core.db import Database
from wxcrm.core.settings import Settings
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.sim import SimControl


async def test_failing_claims_back_off_with_one_traceback(
    outbox_settings: Settings, wechat: WeChatClient, tmp_path: Path
) -> None:
    # A database file without our tables: every claim fails.
    broken = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    with structlog.testing.capture_logs() as logs:
        worker = DeliveryWorker(broken, wechat, outbox_settings)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))

        async def four_failures() -> bool:
            return len([e for e in logs if e["event"] == "claim failed"]) >= 4

        try:
            await until(four_failures, seconds=20)
        finally:
            stop.set()
            await task
    await broken.dispose()
    failures = [e for e in logs if e["event"] == "claim failed"]
    poll = outbox_settings.worker_poll_seconds
    assert [e["retry_in"] for e in failures[:4]] == [poll, poll * 2, poll * 4, poll * 8]
    assert failures[0].get("exc_info") is True
    assert not any(e.get("exc_info") for e in failures[1:])


async def test_outcomes_that_could_not_be_written_are_written_when_the_database_is_back(
    committed: Database,
    worker: DeliveryWorker,
    sim_control: SimControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    advisor = await committed_advisor(committed, credits=1)
    await grant_at_wechat(sim_control, advisor, 1)
    await queue_committed(committed, advisor, 1)
    refusals = 0
    write = worker._write_outcomes

    async def refusing_twice(outcomes: list[Any]) -> None:
        nonlocal refusals
        if refusals < 2:
            refusals += 1
            raise OperationalError("UPDATE notifications", {}, Exception("database is locked"))
        await write(outcomes)

    monkeypatch.setattr(worker, "_write_outcomes", refusing_twice)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def recorded() -> bool:
        return [row.status for row in await rows(committed)] == ["sent"]

    try:
        # No other delivery ends meanwhile: the worker retries the write by itself.
        await until(recorded, seconds=20)
    finally:
        stop.set()
        await task
    assert refusals == 2
    assert len(await sim_control.messages()) == 1
