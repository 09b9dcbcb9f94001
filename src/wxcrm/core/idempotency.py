"""Idempotency keys: a request retried with the same `Idempotency-Key` gets the first
answer again instead of doing the work twice, whichever process serves the retry.

The key is claimed with an INSERT in the request's own transaction, before the work: a
concurrent request with the same key waits on that row (PostgreSQL's unique index, SQLite's
single writer) and, once the first commits, finds its answer. If the first request fails and
rolls back, its claim goes with it and the retry does the work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from wxcrm.core.db import Database, dialect_insert, rowcount
from wxcrm.core.errors import Conflict
from wxcrm.core.models import Base, utcnow
from wxcrm.core.settings import Settings

# A retry comes within seconds or minutes; a day is plenty, and the table stays small.
KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 128


class IdempotentAnswer(Base):
    __tablename__ = "idempotent_answers"

    # What the key is for and whose it is, e.g. "staffapp.create:<user id>".
    scope: Mapped[str] = mapped_column(String(96), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    body: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: dict[str, Any]


def request_fingerprint(payload: Any) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()


async def claim(session: AsyncSession, scope: str, key: str, fingerprint: str) -> Replay | None:
    """Claim `key` for this request: None when the work is ours to do, else the answer the
    first request with this key gave. The same key with another body is refused (409)."""
    inserted = await session.scalar(
        dialect_insert(session, IdempotentAnswer)
        .values(scope=scope, key=key, request_hash=fingerprint, created_at=utcnow())
        .on_conflict_do_nothing()
        .returning(IdempotentAnswer.key)
    )
    if inserted is not None:
        return None
    first = await session.scalar(
        select(IdempotentAnswer)
        .where(IdempotentAnswer.scope == scope, IdempotentAnswer.key == key)
        .execution_options(populate_existing=True)
    )
    if first is None or first.status_code is None or first.body is None:
        # Only a committed claim conflicts, and it commits with its answer.
        raise Conflict("相同 Idempotency-Key 的请求正在处理，请稍后重试")
    if first.request_hash != fingerprint:
        raise Conflict("Idempotency-Key 已用于另一个不同的请求")
    return Replay(first.status_code, first.body)


async def remember(
    session: AsyncSession, scope: str, key: str, status_code: int, body: dict[str, Any]
) -> None:
    """Store the answer of the request that claimed `key`, in its transaction."""
    await session.execute(
        update(IdempotentAnswer)
        .where(IdempotentAnswer.scope == scope, IdempotentAnswer.key == key)
        .values(status_code=status_code, body=body)
    )


async def forget_expired(
    database: Database, settings: Settings, now: datetime | None = None
) -> int:
    """Drop keys older than `KEY_LIFETIME` (a scheduled job); returns how many."""
    cutoff = (now or utcnow()) - KEY_LIFETIME
    async with database.writer() as session:
        result = await session.execute(
            delete(IdempotentAnswer).where(IdempotentAnswer.created_at < cutoff)
        )
        await session.commit()
    return rowcount(result)
