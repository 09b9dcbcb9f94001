"""Health checks for load balancers and operators."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from sqlalchemy import text

from wxcrm.core.db import DatabaseDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.core.errors import ServiceUnavailable
from wxcrm.core.models import utcnow
from wxcrm.notifications.repository import NotificationRepository
from wxcrm.ops.schemas import HealthOut, LiveOut, OutboxBacklog, WeChatTokenState
from wxcrm.wechat.models import WeChatToken

router = APIRouter(prefix="/api/health", tags=["health"])

DATABASE_CHECK_TIMEOUT_S = 3.0
# A write that changes nothing, rolled back: answering SELECT 1 is not enough, a database
# (or a SQLite connection) can read and still refuse every write. It also takes a pooled
# connection, whose file the pool checks is still the database's (see core.db).
WRITE_PROBE = text("UPDATE alembic_version SET version_num = version_num WHERE 1 = 0")


@router.get("")
async def health(database: DatabaseDep, settings: SettingsDep) -> Envelope[HealthOut]:
    """Database writable (503 when not), the outbox backlog and the WeChat token."""
    try:
        async with asyncio.timeout(DATABASE_CHECK_TIMEOUT_S):
            async with database.writer() as session:
                await session.execute(WRITE_PROBE)
                await session.rollback()
    except Exception as exc:  # any failure to reach the database is "down", whatever its type
        details = {"database": "down", "error": type(exc).__name__}
        raise ServiceUnavailable("数据库不可用", details) from exc
    async with database.reader() as session:
        backlog = await NotificationRepository(session).backlog()
        token = await session.get(WeChatToken, settings.wechat_app_id)
    expires_in = (
        int((token.expires_at - utcnow()).total_seconds()) if token and token.expires_at else None
    )
    data = HealthOut(
        outbox=OutboxBacklog.model_validate(backlog),
        wechat_token=WeChatTokenState(cached=expires_in is not None, expires_in=expires_in),
    )
    return Envelope[HealthOut](data=data, message="服务正常")


@router.get("/live")
async def live() -> Envelope[LiveOut]:
    """The process answers; touches nothing else."""
    return Envelope[LiveOut](data=LiveOut(), message="服务正常")
